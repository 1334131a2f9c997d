"""Findings, the one object every governance check reports: kinds, severities, and the query over all read models.

Imports ``ledger.event`` and the shared projection parts; every read model may import it.
"""
