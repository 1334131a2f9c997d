"""The application layer: operations that read the read models and record signed events (tier changes, policies).

May import every ``ledger`` part and ``projections``; imported by the CLI and the recording API, never by the core.
"""
