"""The transparency log: RFC 9162 Merkle tree, C2SP notes and checkpoints, proofs, consistency.

Imports ``ledger.errors``, ``ledger.event`` and ``ledger.crypto``; reaches a store only through the object it is handed.
"""
