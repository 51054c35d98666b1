"""What the engine returns: content context, matches and verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["match", "no_match", "suppressed"]


@dataclass(frozen=True)
class ContentContext:
    """Who sent the content and how; carried into cases and reports.

    ``source_port`` matters: behind carrier-grade NAT an IP address alone
    often cannot identify a subscriber (RFC 6302).
    """

    account_id: str | None = None
    username: str | None = None
    profile_url: str | None = None
    ip_address: str | None = None
    source_port: int | None = None
    client_timestamp: datetime | None = None
    surface: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "account_id": self.account_id,
            "username": self.username,
            "profile_url": self.profile_url,
            "ip_address": self.ip_address,
            "source_port": self.source_port,
            "client_timestamp": (
                self.client_timestamp.isoformat() if self.client_timestamp else None
            ),
            "surface": self.surface,
        }


@dataclass(frozen=True)
class Match:
    """A content signal that hit a bank entry."""

    bank: str
    bank_id: int
    entry_id: int
    signal_type: str
    distance_bits: int
    threshold_bits: int
    is_allow_list: bool
    #: Which variant of the content matched: "original" or a dihedral transform.
    variant: str = "original"
    external_id: str | None = None
    source: str | None = None
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "bank": self.bank,
            "bank_id": self.bank_id,
            "entry_id": self.entry_id,
            "signal_type": self.signal_type,
            "distance_bits": self.distance_bits,
            "threshold_bits": self.threshold_bits,
            "is_allow_list": self.is_allow_list,
            "variant": self.variant,
            "external_id": self.external_id,
            "source": self.source,
            "labels": list(self.labels),
        }


@dataclass(frozen=True)
class Verdict:
    """The engine's outcome for one piece of content, with its reasons."""

    outcome: Outcome
    matches: tuple[Match, ...]
    suppressed: tuple[Match, ...] = ()
    allow_matches: tuple[Match, ...] = ()
    reasons: tuple[str, ...] = ()
    signals: dict[str, Any] = field(default_factory=dict)
    context: ContentContext | None = None
    #: Classifier category scores (category -> score in 0..1, or None when no
    #: loaded model assesses it); None when no classifier ran at all.
    scores: dict[str, float | None] | None = None

    @property
    def matched(self) -> bool:
        """True when at least one non-suppressed match was found."""
        return self.outcome == "match"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "outcome": self.outcome,
            "matches": [m.to_dict() for m in self.matches],
            "suppressed": [m.to_dict() for m in self.suppressed],
            "allow_matches": [m.to_dict() for m in self.allow_matches],
            "reasons": list(self.reasons),
            "signals": self.signals,
            "context": self.context.to_dict() if self.context else None,
            "scores": dict(self.scores) if self.scores is not None else None,
        }
