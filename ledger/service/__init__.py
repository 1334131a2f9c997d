"""The HTTP servers: the service of one ledger (``govledger serve``: appends with group
commit, reads, proofs and C2SP tlog-tiles, behind bearer tokens) and a C2SP tlog-witness
(``govledger witness serve``), with the log's client of that protocol (``witness_client``,
standard library only). Built on Starlette and uvicorn (the extra ``govledger[serve]``), so no
HTTP is parsed here. See docs/service.md."""
