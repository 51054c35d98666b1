"""Policy: which verdict (allow / review / block) and actions follow from a check.

Rules live in a TOML file (or the defaults below). The first rule whose
conditions all hold decides; no rule holding gives the default. Example::

    default_verdict = "allow"

    [[rule]]
    name = "known material"
    outcome = ["match"]              # match | no_match | suppressed
    signal_types = ["pdq", "md5"]    # any match of these types (optional)
    banks = ["ncmec", "iwf"]         # any match in these banks (optional)
    max_distance_bits = 31           # a match at most this far (optional)
    surfaces = ["upload", "chat"]    # where the content came from (optional)
    verdict = "block"
    actions = ["block", "enqueue_review", "webhook"]

    [[rule]]
    name = "explicit and likely a minor"
    min_scores = { explicit_nudity = 0.8, minor_likely = 0.7 }   # classifier scores
    verdict = "block"
    actions = ["block", "enqueue_review"]

``min_scores`` holds when **every** listed category has a classifier score at least
that high; a category that no loaded model assessed (score None) never satisfies
it, and neither does a check that ran no classifier. Combined with ``outcome`` or
``banks`` in one rule, all conditions must hold (AND); use two rules for OR.

Flood control: ``flood_window_s = 3600`` (top level, default one hour). Matches
of one account less than this many seconds after its previous one are counted
on the same review item (one incident) instead of opening a new one.

Rules are validated when loaded; every error names the rule and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from safestream.actions.registry import ACTIONS
from safestream.classify.base import CATEGORIES
from safestream.engine.verdict import Match, Verdict
from safestream.errors import ConfigError

VerdictName = Literal["allow", "review", "block"]
VERDICTS: tuple[str, ...] = ("allow", "review", "block")
OUTCOMES: tuple[str, ...] = ("match", "no_match", "suppressed")
#: Action names a rule may use: a live view of the action registry
#: (:mod:`safestream.actions.registry`), its one source of truth.
KNOWN_ACTIONS: Set[str] = ACTIONS.keys()
#: Default flood-control window, in seconds.
DEFAULT_FLOOD_WINDOW_S = 3600.0

_RULE_KEYS = {
    "name",
    "outcome",
    "signal_types",
    "banks",
    "max_distance_bits",
    "surfaces",
    "min_scores",
    "verdict",
    "actions",
}


@dataclass(frozen=True)
class Rule:
    """One rule: conditions, then the verdict and actions when they hold."""

    name: str
    verdict: VerdictName
    actions: tuple[str, ...] = ()
    outcome: frozenset[str] | None = None
    signal_types: frozenset[str] | None = None
    banks: frozenset[str] | None = None
    max_distance_bits: int | None = None
    surfaces: frozenset[str] | None = None
    #: Category -> lowest classifier score for the rule to hold (all must hold).
    min_scores: tuple[tuple[str, float], ...] | None = None

    def _scores_ok(self, verdict: Verdict) -> bool:
        if self.min_scores is None:
            return True
        scores = verdict.scores
        if scores is None:
            return False
        for category, minimum in self.min_scores:
            value = scores.get(category)
            if value is None or value < minimum:
                return False
        return True

    def _match_ok(self, m: Match) -> bool:
        if self.signal_types is not None and m.signal_type not in self.signal_types:
            return False
        if self.banks is not None and m.bank not in self.banks:
            return False
        return self.max_distance_bits is None or m.distance_bits <= self.max_distance_bits

    def applies(self, verdict: Verdict, surface: str | None) -> bool:
        """True when every condition of the rule holds for ``verdict``."""
        if self.outcome is not None and verdict.outcome not in self.outcome:
            return False
        if self.surfaces is not None and surface not in self.surfaces:
            return False
        if not self._scores_ok(verdict):
            return False
        needs_match = (
            self.signal_types is not None
            or self.banks is not None
            or self.max_distance_bits is not None
        )
        if needs_match:
            pool = verdict.matches or verdict.suppressed
            return any(self._match_ok(m) for m in pool)
        return True


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one check."""

    verdict: VerdictName
    actions: tuple[str, ...]
    rule: str | None


@dataclass(frozen=True)
class Policy:
    """An ordered list of rules and a default."""

    rules: tuple[Rule, ...]
    default_verdict: VerdictName = "allow"
    default_actions: tuple[str, ...] = ()
    #: Flood control: repeats of one account within this window are one incident.
    flood_window_s: float = DEFAULT_FLOOD_WINDOW_S

    def action_names(self) -> set[str]:
        """Every action some rule (or the default) may take."""
        names = set(self.default_actions)
        for rule in self.rules:
            names.update(rule.actions)
        return names

    def decide(self, verdict: Verdict, surface: str | None = None) -> Decision:
        """The first rule that applies decides; else the default."""
        for rule in self.rules:
            if rule.applies(verdict, surface):
                return Decision(rule.verdict, rule.actions, rule.name)
        return Decision(self.default_verdict, self.default_actions, None)

    @classmethod
    def load(cls, path: Path, *, known_actions: Iterable[str] | None = None) -> Policy:
        """Read and validate a TOML policy file."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"policy file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"policy file {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path), known_actions=known_actions)

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        source: str = "policy",
        known_actions: Iterable[str] | None = None,
    ) -> Policy:
        """Validate a parsed policy; errors name the rule and field."""
        actions_ok = set(known_actions) if known_actions is not None else KNOWN_ACTIONS
        unknown_top = set(data) - {"default_verdict", "default_actions", "rule", "flood_window_s"}
        if unknown_top:
            raise ConfigError(f"{source}: unknown keys {sorted(unknown_top)}")
        default = _verdict(data.get("default_verdict", "allow"), f"{source}: default_verdict")
        default_actions = _actions(
            data.get("default_actions", []), actions_ok, f"{source}: default_actions"
        )
        flood = data.get("flood_window_s", DEFAULT_FLOOD_WINDOW_S)
        if isinstance(flood, bool) or not isinstance(flood, int | float) or flood < 0:
            raise ConfigError(
                f"{source}: flood_window_s must be a number of seconds >= 0 "
                f"(0 turns flood control off), got {flood!r}"
            )
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise ConfigError(f"{source}: 'rule' must be an array of tables ([[rule]])")
        rules = []
        names: set[str] = set()
        for i, raw in enumerate(raw_rules, start=1):
            where = f"{source}: rule {i}"
            if not isinstance(raw, dict):
                raise ConfigError(f"{where} must be a table")
            unknown = set(raw) - _RULE_KEYS
            if unknown:
                raise ConfigError(
                    f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}"
                )
            name = raw.get("name", f"rule {i}")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: name must be a non-empty string")
            if name in names:
                raise ConfigError(f"{where}: duplicate rule name {name!r}")
            names.add(name)
            where = f"{source}: rule {name!r}"
            if "verdict" not in raw:
                raise ConfigError(f"{where}: 'verdict' is required (allow, review or block)")
            max_distance = raw.get("max_distance_bits")
            if max_distance is not None and (
                not isinstance(max_distance, int) or not 0 <= max_distance <= 256
            ):
                raise ConfigError(f"{where}: max_distance_bits must be an integer 0..256")
            outcome = _names(raw.get("outcome"), f"{where}: outcome")
            if outcome is not None and not outcome <= set(OUTCOMES):
                raise ConfigError(
                    f"{where}: outcome must be among {list(OUTCOMES)}, got {sorted(outcome)}"
                )
            rules.append(
                Rule(
                    name=name,
                    verdict=_verdict(raw["verdict"], f"{where}: verdict"),
                    actions=_actions(raw.get("actions", []), actions_ok, f"{where}: actions"),
                    outcome=outcome,
                    signal_types=_names(raw.get("signal_types"), f"{where}: signal_types"),
                    banks=_names(raw.get("banks"), f"{where}: banks"),
                    max_distance_bits=max_distance,
                    surfaces=_names(raw.get("surfaces"), f"{where}: surfaces"),
                    min_scores=_min_scores(raw.get("min_scores"), f"{where}: min_scores"),
                )
            )
        return cls(tuple(rules), default, default_actions, float(flood))


def _verdict(value: Any, where: str) -> VerdictName:
    if value not in VERDICTS:
        raise ConfigError(f"{where} must be one of {list(VERDICTS)}, got {value!r}")
    result: VerdictName = value
    return result


def _names(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise ConfigError(f"{where} must be a non-empty list of strings")
    return frozenset(value)


def _min_scores(value: Any, where: str) -> tuple[tuple[str, float], ...] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            f"{where} must be a non-empty table of category = score, e.g. "
            "{ explicit_nudity = 0.8 }"
        )
    out = []
    for category, minimum in value.items():
        if category not in CATEGORIES:
            raise ConfigError(f"{where}: unknown category {category!r}; known: {list(CATEGORIES)}")
        if (
            isinstance(minimum, bool)
            or not isinstance(minimum, int | float)
            or not 0.0 <= minimum <= 1.0
        ):
            raise ConfigError(f"{where}: {category} must be a number in 0..1, got {minimum!r}")
        out.append((category, float(minimum)))
    return tuple(out)


def _actions(value: Any, known: Set[str], where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of action names")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown actions {unknown}; known: {sorted(known)}")
    return tuple(value)


#: Used when no policy file is configured.
DEFAULT_POLICY = Policy(
    rules=(
        Rule(
            name="known material",
            outcome=frozenset({"match"}),
            verdict="block",
            actions=("block", "enqueue_review"),
        ),
        # These two only fire when classifiers are configured (SAFESTREAM_CLASSIFIERS):
        # an unassessed category never satisfies min_scores. 0.8 is opennsfw's
        # calibrated threshold (0 false positives on the 628-image benign set).
        Rule(
            name="classifier: explicit, minor likely",
            min_scores=(("explicit_nudity", 0.8), ("minor_likely", 0.7)),
            verdict="block",
            actions=("block", "enqueue_review"),
        ),
        Rule(
            name="classifier: explicit",
            min_scores=(("explicit_nudity", 0.8),),
            verdict="review",
            actions=("obscure", "enqueue_review"),
        ),
    ),
    default_verdict="allow",
)
