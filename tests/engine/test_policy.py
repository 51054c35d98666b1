"""Policy rules: first match decides; files are validated with precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from safestream.engine.policy import DEFAULT_POLICY, Policy
from safestream.engine.verdict import Match, Verdict
from safestream.errors import ConfigError


def match(bank: str = "ncmec", signal_type: str = "pdq", distance: int = 10) -> Match:
    return Match(bank, 1, 1, signal_type, distance, 31, False)


def verdict(*matches: Match, outcome: str = "match") -> Verdict:
    return Verdict(outcome=outcome, matches=tuple(matches))  # type: ignore[arg-type]


POLICY = """
default_verdict = "allow"

[[rule]]
name = "exact"
outcome = ["match"]
signal_types = ["md5"]
verdict = "block"
actions = ["block", "webhook"]

[[rule]]
name = "near ncmec"
banks = ["ncmec"]
max_distance_bits = 20
surfaces = ["upload"]
verdict = "block"
actions = ["block", "enqueue_review"]

[[rule]]
name = "weak"
outcome = ["match"]
verdict = "review"
actions = ["enqueue_review"]
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return Policy.load(path)


def test_first_applicable_rule_decides(policy: Policy) -> None:
    d = policy.decide(verdict(match(signal_type="md5", distance=0)), "chat")
    assert (d.verdict, d.actions, d.rule) == ("block", ("block", "webhook"), "exact")
    d = policy.decide(verdict(match(distance=12)), "upload")
    assert d.rule == "near ncmec"
    assert policy.decide(verdict(match(distance=12)), "chat").rule == "weak"
    assert policy.decide(verdict(match(distance=25)), "upload").rule == "weak"
    assert policy.decide(verdict(match(bank="iwf", distance=1)), "upload").rule == "weak"
    none = policy.decide(verdict(outcome="no_match"), "upload")
    assert (none.verdict, none.actions, none.rule) == ("allow", (), None)


def test_default_policy() -> None:
    assert DEFAULT_POLICY.decide(verdict(match())).verdict == "block"
    assert DEFAULT_POLICY.decide(verdict(outcome="suppressed")).verdict == "allow"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[rule]]\nverdict = 'ban'\n", "rule 'rule 1': verdict must be one of"),
        ("[[rule]]\nname = 'a'\n", "rule 'a': 'verdict' is required"),
        ("[[rule]]\nname='a'\nverdict='block'\nactions=['nuke']\n", "unknown actions ['nuke']"),
        ("[[rule]]\nname='a'\nverdict='block'\ncolour='red'\n", "unknown keys ['colour']"),
        ("[[rule]]\nname='a'\nverdict='block'\noutcome=['maybe']\n", "outcome must be among"),
        ("[[rule]]\nname='a'\nverdict='block'\nbanks='ncmec'\n", "banks must be a non-empty list"),
        ("[[rule]]\nname='a'\nverdict='block'\nmax_distance_bits=300\n", "max_distance_bits"),
        (
            "[[rule]]\nname='a'\nverdict='block'\n[[rule]]\nname='a'\nverdict='allow'\n",
            "duplicate rule name",
        ),
        ("default_verdict = 'maybe'\n", "default_verdict must be one of"),
        ("mode = 'x'\n", "unknown keys ['mode']"),
        ("rule = 3\n", "array of tables"),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_invalid_policies(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Policy.load(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Policy.load(tmp_path / "nope.toml")


def test_default_policy_classifier_rules() -> None:
    def scored(**scores: float | None) -> Verdict:
        base = {"explicit_nudity": None, "minor_likely": None}
        return Verdict(outcome="no_match", matches=(), scores={**base, **scores})

    both = DEFAULT_POLICY.decide(scored(explicit_nudity=0.95, minor_likely=0.8))
    assert (both.verdict, both.actions) == ("block", ("block", "enqueue_review"))
    explicit = DEFAULT_POLICY.decide(scored(explicit_nudity=0.9))
    assert (explicit.verdict, explicit.actions) == ("review", ("obscure", "enqueue_review"))
    assert DEFAULT_POLICY.decide(scored(explicit_nudity=0.3)).verdict == "allow"
    # not assessed is never treated as a score
    assert DEFAULT_POLICY.decide(scored(minor_likely=0.99)).verdict == "allow"
