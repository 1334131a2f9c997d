"""Verification: the streaming chain, signature and tree checks of a stored log or an exported file.

Imports ``ledger.event``, ``ledger.crypto``, ``ledger.tlog`` and the store interface; never projections or the CLI.
"""
