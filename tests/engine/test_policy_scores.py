"""Classifier category scores in policy rules (``min_scores``) and in verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from safestream.engine.policy import DEFAULT_POLICY, Policy
from safestream.engine.verdict import Match, Verdict
from safestream.errors import ConfigError

POLICY = """
[[rule]]
name = "known material"
outcome = ["match"]
verdict = "block"
actions = ["block", "enqueue_review"]

[[rule]]
name = "explicit and likely a minor"
min_scores = { explicit_nudity = 0.8, minor_likely = 0.7 }
verdict = "block"
actions = ["block", "enqueue_review"]

[[rule]]
name = "explicit"
min_scores = { explicit_nudity = 0.8 }
verdict = "review"
actions = ["enqueue_review"]
"""


def scores(**values: float | None) -> dict[str, float | None]:
    base: dict[str, float | None] = dict.fromkeys(
        ("explicit_nudity", "suggestive", "minor_likely", "csam", "drawn_explicit")
    )
    base.update(values)
    return base


def verdict(outcome: str = "no_match", **values: float | None) -> Verdict:
    matches = (Match("ncmec", 1, 1, "pdq", 3, 31, False),) if outcome == "match" else ()
    return Verdict(outcome=outcome, matches=matches, scores=scores(**values) if values else None)  # type: ignore[arg-type]


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return Policy.load(path)


def test_scores_decide(policy: Policy) -> None:
    assert policy.decide(verdict(explicit_nudity=0.9, minor_likely=0.75)).rule == (
        "explicit and likely a minor"
    )
    d = policy.decide(verdict(explicit_nudity=0.9, minor_likely=0.2))
    assert (d.verdict, d.actions, d.rule) == ("review", ("enqueue_review",), "explicit")
    assert policy.decide(verdict(explicit_nudity=0.8)).rule == "explicit"  # at the threshold
    assert policy.decide(verdict(explicit_nudity=0.79)).rule is None


def test_not_assessed_never_satisfies(policy: Policy) -> None:
    # No age model loaded: minor_likely is None, so only the explicit rule holds.
    assert policy.decide(verdict(explicit_nudity=0.95, minor_likely=None)).rule == "explicit"
    # No classifier ran at all.
    assert policy.decide(verdict()).rule is None


def test_hash_match_still_wins_first(policy: Policy) -> None:
    assert policy.decide(verdict("match", explicit_nudity=0.0)).rule == "known material"
    assert policy.decide(verdict("match")).rule == "known material"


def test_scores_and_outcome_together_are_and() -> None:
    p = Policy.from_dict(
        {
            "rule": [
                {
                    "name": "both",
                    "outcome": ["no_match"],
                    "min_scores": {"csam": 0.5},
                    "verdict": "block",
                }
            ]
        }
    )
    assert p.decide(verdict(csam=0.6)).rule == "both"
    assert p.decide(verdict("match", csam=0.6)).rule is None
    assert p.decide(verdict(csam=0.4)).rule is None


def test_default_policy_scores_need_an_assessed_category() -> None:
    # explicit only -> review and obscure; a category nobody assessed never fires a rule
    assert DEFAULT_POLICY.decide(verdict(explicit_nudity=1.0)).verdict == "review"
    assert DEFAULT_POLICY.decide(verdict(csam=None)).verdict == "allow"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("'high'", "min_scores must be a non-empty table"),
        ("{}", "min_scores must be a non-empty table"),
        ("{ violence = 0.5 }", "unknown category 'violence'"),
        ("{ csam = 1.5 }", "csam must be a number in 0..1"),
        ("{ csam = -0.1 }", "csam must be a number in 0..1"),
        ("{ csam = true }", "csam must be a number in 0..1"),
        ("{ csam = 'x' }", "csam must be a number in 0..1"),
    ],
)
def test_min_scores_validation(value: str, fragment: str) -> None:
    import tomllib

    data = tomllib.loads(f"[[rule]]\nname = 'r'\nverdict = 'block'\nmin_scores = {value}\n")
    with pytest.raises(ConfigError) as info:
        Policy.from_dict(data, source="p.toml")
    assert "p.toml: rule 'r': min_scores" in str(info.value)
    assert fragment in str(info.value)


def test_verdict_scores_field() -> None:
    plain = Verdict(outcome="no_match", matches=())
    assert plain.scores is None
    assert plain.to_dict()["scores"] is None
    scored = verdict(explicit_nudity=0.25)
    body = scored.to_dict()["scores"]
    assert body["explicit_nudity"] == 0.25 and body["minor_likely"] is None
