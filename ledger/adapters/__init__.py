"""Adapters from agent runtimes to the recording API (``ledger.recording``), one module per
runtime, each over the runtime's own extension point and each needing its optional extra
(``pip install 'govledger[openai-agents]'``...). See docs/adapters.md and
docs/seed-adapters.md.

Nothing here is imported by ``ledger`` itself: a runtime's adapter loads its framework only
when it is imported.
"""
