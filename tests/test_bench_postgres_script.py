"""scripts/bench_postgres.py: its help, and one clear line when the server is unreachable
(the benchmark itself is run by hand, never by the test suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_postgres.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_help_lists_the_scenarios_and_exits_zero() -> None:
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    assert "--scenarios" in proc.stdout
    assert "concurrent" in proc.stdout


def test_an_unreachable_server_exits_3_with_one_line_and_no_traceback() -> None:
    proc = run("--pg", "postgresql://postgres@127.0.0.1:1/test")
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bench_postgres: ")
    assert "Traceback" not in proc.stderr
