"""The governance policy: its TOML document, validated model, digest, and the policy in force while folding.

Imports ``ledger.event`` and ``ledger.errors`` only.
"""
