"""TEMPORARY shim."""
from scripts.generate import GOVERNOR, generate_drafts  # noqa: F401
