"""The tiers read model: each agent's tier and history, the rules that make changes due, and their queries.

Imports the shared projection parts, ``projections.runs`` (its rows) and ``ledger.event``.
"""
