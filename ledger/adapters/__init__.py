"""Adapters from agent runtimes to the recording API, each behind an optional extra."""
