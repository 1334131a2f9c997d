"""``test_cli_findings``'s tests on PostgreSQL (see ``tests/pg_stores.py``)."""

from __future__ import annotations

from tests.pg_stores import ledger
from tests.test_cli_findings import (
    db,
    test_a_change_back_to_the_justified_tier_undoes_the_unjustified_one,
    test_a_filter_that_matches_nothing_prints_nothing_and_says_so,
    test_a_trust_me_promotion_is_a_critical_finding_the_effective_tier_ignores,
    test_an_invalid_severity_or_kind_is_a_usage_error_naming_the_valid_ones,
    test_evidence_seq_is_the_event_before_when_the_cited_seq_to_is_not_earlier,
    test_findings_filters,
    test_findings_limit_shows_the_first_and_says_how_many_more,
    test_findings_lists_every_read_model_in_seq_order_with_a_count,
    test_findings_since_and_until_are_inclusive,
    test_findings_travel_in_time,
    test_the_agent_keeps_its_justified_tier_and_no_revocation_falls_due,
    test_tiers_history_table_says_the_finding_is_critical,
)

__all__ = [
    "db",
    "ledger",
    "test_a_change_back_to_the_justified_tier_undoes_the_unjustified_one",
    "test_a_filter_that_matches_nothing_prints_nothing_and_says_so",
    "test_a_trust_me_promotion_is_a_critical_finding_the_effective_tier_ignores",
    "test_an_invalid_severity_or_kind_is_a_usage_error_naming_the_valid_ones",
    "test_evidence_seq_is_the_event_before_when_the_cited_seq_to_is_not_earlier",
    "test_findings_filters",
    "test_findings_limit_shows_the_first_and_says_how_many_more",
    "test_findings_lists_every_read_model_in_seq_order_with_a_count",
    "test_findings_since_and_until_are_inclusive",
    "test_findings_travel_in_time",
    "test_the_agent_keeps_its_justified_tier_and_no_revocation_falls_due",
    "test_tiers_history_table_says_the_finding_is_critical",
]
