"""What the adapters share: tool results become JSON for their digests."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from ledger.adapters.common import jsonable
from ledger.recording import digest_of


class Hit(BaseModel):
    title: str
    score: float


class Opaque:
    def __str__(self) -> str:
        return "opaque"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, "b", None]}, {"a": [1, "b", None]}),
        ("text", "text"),
        (0.5, 0.5),
        (Hit(title="t", score=0.5), {"title": "t", "score": 0.5}),
        (Opaque(), "opaque"),
        (float("nan"), "nan"),
        ({"set": {1}}, "{'set': {1}}"),
    ],
    ids=["json", "text", "float", "pydantic-model", "object-as-text", "nan-as-text", "set-as-text"],
)
def test_results_become_json_or_their_text(value: Any, expected: Any) -> None:
    assert jsonable(value) == expected
    digest_of(jsonable(value), "result")  # always digestible
