"""Moving events in and out of a ledger: JSON Lines import of drafts, exports and listings.

Imports the event model and the store interface; never projections or the CLI.
"""
