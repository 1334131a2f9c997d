"""Keyword signatures of correction texts and their similarity (docs/corrections.md).

Deliberately simple, so that anyone can recompute a clustering by hand or in another language:

1. lowercase the text and split it on every character that is not a letter;
2. drop tokens shorter than ``MIN_LENGTH`` letters and the words of ``STOP_WORDS``;
3. stem each token with ``stem`` (a few suffix rules, below);
4. the signature is the *set* of stems; two signatures are compared by Jaccard similarity in
   integer basis points, rounded down: ``|A ∩ B| × 10000 // |A ∪ B|`` (0 when both are empty).
"""

from __future__ import annotations

import re
from functools import lru_cache

MIN_LENGTH = 3
"""Tokens shorter than this are dropped ("a", "to", "km", the "t" of "don't")."""

_STOP_TEXT = """
a about above after again against all also always am an and any are aren as at be because been
before being below between both but by can cannot could did didn do does doesn doing don down
during each every few for from further had hadn has hasn have haven having he her here hers
herself him himself his how i if in instead into is isn it its itself just let lets like make me
more most much must mustn my myself never no nor not now of off ok okay on once only or other
our ours ourselves out over own please really same shan she should shouldn so some still such
than thank thanks that the their theirs them themselves then there these they thing things this
those through to too under until up us very was wasn we were weren what when where which while
who whom why will with won would wouldn yes you your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
"""English function words, politeness and quantifiers: they say nothing about the topic."""

_SPLIT = re.compile(r"[^\W\d_]+")
"""Runs of letters (Unicode letters included; digits, underscores and punctuation split)."""


def stem(word: str) -> str:
    """Light suffix stripping, in this order (a rule applies only if 3 letters remain):

    - ``ies`` → ``y`` (summaries → summary);
    - else the first of ``ing``, ``ed``, ``ly``, ``es``, ``s`` the word ends with is removed
      (citing → cit, sources → sourc, units → unit);
    - then a final ``e`` is removed (source → sourc, cite → cit, delete → delet), so that the
      bare word and its inflections meet.
    """
    if word.endswith("ies") and len(word) - 3 >= 3:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "ly", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) - 1 >= 3:
        word = word[:-1]
    return word


@lru_cache(maxsize=8192)
def keywords(text: str) -> tuple[tuple[str, str], ...]:
    """``(stem, first surface word)`` of each distinct stem of ``text``, in order of appearance."""
    seen: dict[str, str] = {}
    for token in _SPLIT.findall(text.lower()):
        if len(token) < MIN_LENGTH or token in STOP_WORDS:
            continue
        seen.setdefault(stem(token), token)
    return tuple(seen.items())


def signature(text: str) -> frozenset[str]:
    """The keyword signature of ``text``: its set of stems."""
    return frozenset(s for s, _ in keywords(text))


def similarity_bp(a: frozenset[str], b: frozenset[str]) -> int:
    """Jaccard similarity in basis points, rounded down (integers only: anyone can recompute)."""
    union = len(a | b)
    return len(a & b) * 10000 // union if union else 0
