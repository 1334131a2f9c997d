"""The correction-patterns read model: user corrections clustered per agent, and their queries.

Imports the shared projection parts and ``ledger.event``.
"""
