"""The HTTP service of one ledger (``govledger serve``): appends with group commit, reads,
proofs and C2SP tlog-tiles, behind bearer tokens. Built on Starlette and uvicorn (the extra
``govledger[serve]``), so no HTTP is parsed here. See docs/service.md."""
