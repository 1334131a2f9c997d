"""The runs read model: the run state machine, totals, agents' contracts and the governance checks.

Imports the shared projection parts (``projections.projection``, ``findings``, ``policy``) and ``ledger.event``.
"""
