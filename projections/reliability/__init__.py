"""The reliability read model: tool loops, cost caps, quality decline and repeated failures.

Imports the shared projection parts and ``ledger.event``.
"""
