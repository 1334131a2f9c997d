"""The gate and correction memory through ``govledger serve`` on a PostgreSQL database: the
tests of ``test_recorder_service`` again, with ``ready`` on a fresh database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg_stores import PgCli, pg_ready
from tests.test_recorder_service import (
    served,
    test_a_denied_call_in_a_connected_run_is_a_finding,
    test_a_token_bound_to_another_agent_is_refused,
    test_async_runs_check_tools_through_the_service,
    test_lessons_through_the_service_are_the_local_ones,
    test_the_openai_agents_adapter_works_unchanged_over_a_connected_recorder,
    test_the_service_answers_the_gate_as_a_local_recorder_does,
)

__all__ = [
    "served",
    "test_a_denied_call_in_a_connected_run_is_a_finding",
    "test_a_token_bound_to_another_agent_is_refused",
    "test_async_runs_check_tools_through_the_service",
    "test_lessons_through_the_service_are_the_local_ones",
    "test_the_openai_agents_adapter_works_unchanged_over_a_connected_recorder",
    "test_the_service_answers_the_gate_as_a_local_recorder_does",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def ready(tmp_path: Path, pg_url: str) -> PgCli:
    return pg_ready(tmp_path, pg_url)
