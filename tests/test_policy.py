"""The governance policy document: validation, digest, version, and the policy in force."""

from __future__ import annotations

import pytest

from ledger.errors import PolicyError
from ledger.event.envelope import PolicySet
from projections.policy.document import (
    default_document,
    default_policy,
    digest_of,
    load_toml,
    policy_from_event,
    validate,
)
from projections.testing import Events
from projections.tiers.queries import policy_in_force
from tests.tiers_helpers import fold, policy_doc, set_policy


def test_default_policy_is_version_0_and_documented_fields_validate() -> None:
    p = default_policy()
    assert p.version == 0 and p.digest == digest_of(default_document())
    assert p.rules.criteria_for(1) is not None and p.rules.criteria_for(5) is None
    assert p.rules.noncompliant_mask == 1 | 4 | 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cooldown = 1\n[promotion.T1]\n", "policy: cooldown: unknown field"),
        (
            "cooldown_seconds = 1.5\n[promotion.T1]\n",
            "policy.cooldown_seconds: float 1.5 is not allowed in signed content; use integers",
        ),
        (
            "[promotion.T5]\n",
            "policy: promotion.T5.[key]: Input should be 'T1', 'T2', 'T3' or 'T4'",
        ),
        (
            "[promotion.T1]\nmax_violation_rate_bp = 10001\n",
            "policy: promotion.T1.max_violation_rate_bp: Input should be less than or equal to 10000",
        ),
        ("human_approval_from_tier = 3\n", "policy: promotion: Field required"),
        ("x = [", "policy: invalid TOML: "),
    ],
    ids=["unknown-field", "float", "tier-5", "rate-over-10000", "no-promotion", "bad-toml"],
)
def test_invalid_policies_are_refused_with_the_field_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as e:
        load_toml(text)
    assert e.value.message.startswith(message), e.value.message


def test_a_recorded_document_whose_digest_differs_is_refused() -> None:
    doc = default_document()
    p = PolicySet(version=1, digest="0" * 64, document=doc)
    with pytest.raises(PolicyError, match=r"seq 9: policy.set: digest is 000000000000…"):
        policy_from_event(p, 9)


def test_policy_in_force_is_the_last_valid_policy_set_at_or_before_a_seq() -> None:
    ev = Events()
    first = set_policy(ev, policy_doc(cooldown_seconds=5), 1)
    bad = {"promotion": {}, "cooldown_seconds": -1}
    ev.add("policy.set", version=2, digest=digest_of(bad), document=bad)
    second = set_policy(ev, policy_doc(cooldown_seconds=7), 3)
    db = fold(ev)
    assert policy_in_force(db, 0).version == 0
    assert policy_in_force(db, first).rules.cooldown_seconds == 5
    assert policy_in_force(db, second - 1).version == 1  # the invalid version 2 never took force
    assert policy_in_force(db).rules.cooldown_seconds == 7
    (error,) = [r[0] for r in db.execute("SELECT error FROM tier_policies WHERE error IS NOT NULL")]
    assert error.startswith("seq 2: policy.set document: cooldown_seconds:")


def test_validate_accepts_every_section_of_the_default() -> None:
    rules = validate(default_document())
    assert set(rules.promotion) == {"T1", "T2", "T3", "T4"}
