"""Keys and signatures: Ed25519 key files, event hashing and signing, the worker-process pool.

Imports ``ledger.errors`` and ``ledger.event`` only; takes and returns bytes.
"""
