"""The event model: catalog payloads, the envelope, drafts, their canonical RFC 8785 bytes, and
the body bytes of a stored event (``body``) that are hashed, signed and verified.

Imports only ``ledger.errors`` and each other; no SQL, no keys on disk, no processes.
"""
