"""The event model: catalog payloads, the envelope, drafts and their canonical RFC 8785 bytes.

Imports only ``ledger.errors`` and each other; no SQL, no keys on disk, no processes.
"""
