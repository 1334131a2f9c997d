"""``test_cli_tiers``'s tests on PostgreSQL (see ``tests/pg_stores.py``)."""

from __future__ import annotations

from tests.pg_stores import ledger
from tests.test_cli_tiers import (
    cli,
    policy_file,
    test_apply_refuses_a_recorder_key,
    test_compute_with_another_policy_records_nothing,
    test_history_of_an_unknown_agent_is_exit_2,
    test_policy_set_refuses_an_invalid_file,
    test_policy_show_at_seq_gives_the_policy_in_force_then,
    test_show_as_of_equals_the_tiers_of_the_truncated_ledger,
    test_show_compute_apply_history_end_to_end,
)

__all__ = [
    "cli",
    "ledger",
    "policy_file",
    "test_apply_refuses_a_recorder_key",
    "test_compute_with_another_policy_records_nothing",
    "test_history_of_an_unknown_agent_is_exit_2",
    "test_policy_set_refuses_an_invalid_file",
    "test_policy_show_at_seq_gives_the_policy_in_force_then",
    "test_show_as_of_equals_the_tiers_of_the_truncated_ledger",
    "test_show_compute_apply_history_end_to_end",
]
