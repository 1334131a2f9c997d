"""``test_cli_runs``'s tests on PostgreSQL (see ``tests/pg_stores.py``)."""

from __future__ import annotations

from tests.pg_stores import ledger
from tests.test_cli_runs import (
    db,
    test_at_seq_and_as_of_together_are_refused,
    test_metrics_as_of_a_time_before_the_payment,
    test_metrics_counts_compliance_and_streaks_from_findings,
    test_metrics_for_an_unknown_agent_is_a_usage_error,
    test_reading_commands_catch_up_with_new_events,
    test_replay_check_takes_no_time_travel,
    test_replay_rebuilds_and_check_passes,
    test_runs_list_filters,
    test_runs_list_for_people_is_a_table,
    test_runs_list_json_has_the_minimal_run_shape,
    test_runs_list_since_is_inclusive,
    test_runs_show_at_seq_is_the_run_as_it_stood,
    test_runs_show_gives_timeline_findings_and_verification,
    test_runs_show_unknown_run_is_a_usage_error,
)

__all__ = [
    "db",
    "ledger",
    "test_at_seq_and_as_of_together_are_refused",
    "test_metrics_as_of_a_time_before_the_payment",
    "test_metrics_counts_compliance_and_streaks_from_findings",
    "test_metrics_for_an_unknown_agent_is_a_usage_error",
    "test_reading_commands_catch_up_with_new_events",
    "test_replay_check_takes_no_time_travel",
    "test_replay_rebuilds_and_check_passes",
    "test_runs_list_filters",
    "test_runs_list_for_people_is_a_table",
    "test_runs_list_json_has_the_minimal_run_shape",
    "test_runs_list_since_is_inclusive",
    "test_runs_show_at_seq_is_the_run_as_it_stood",
    "test_runs_show_gives_timeline_findings_and_verification",
    "test_runs_show_unknown_run_is_a_usage_error",
]
