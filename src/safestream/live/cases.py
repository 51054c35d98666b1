"""The ``open_case`` action: a live detection becomes a check record (and encrypted evidence).

A check record with ``surface="live"`` is what :meth:`CaseService.sync` groups into
cases, and ``live`` detections get the top priority there. The record carries the
stream's context (account, username, profile URL, IP address, **source port**, stream
start), the stream timestamps and PDQ hashes of the triggering frames, the matches and
the classifier scores. The triggering frames themselves are preserved only in the
encrypted evidence store, when one is configured; they are never written to plain disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safestream.errors import SafestreamError, error_kind
from safestream.live.monitor import ActionRequest

if TYPE_CHECKING:
    from safestream.evidence.store import EvidenceStore
    from safestream.store.db import Store
    from safestream.store.service import CheckRepository

log = logging.getLogger(__name__)

#: The surface of live check records (cases give it the top priority).
SURFACE = "live"
#: Legal basis written on the first hold of preserved live frames.
LEGAL_BASIS = "live stream detection (open_case): preserved pending review and report"


@dataclass(frozen=True)
class LiveCaseRecord:
    """What ``open_case`` wrote: the check record's content id and the evidence ids."""

    content_id: str
    evidence_ids: tuple[str, ...]
    evidence_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "content_id": self.content_id,
            "evidence_ids": list(self.evidence_ids),
            "evidence_error": self.evidence_error,
        }


def evidence_from_env(
    store: Store, environ: Mapping[str, str] | None = None
) -> EvidenceStore | None:
    """The evidence store when evidence keys are configured, else None (frames not kept)."""
    from safestream.evidence.crypto import ENV_KEY_FILE, ENV_KEYS
    from safestream.evidence.store import EvidenceStore

    env = os.environ if environ is None else environ
    if not (env.get(ENV_KEYS, "").strip() or env.get(ENV_KEY_FILE, "").strip()):
        return None
    return EvidenceStore.from_env(store, environ)


def _max_scores(
    scores: tuple[Mapping[str, float | None] | None, ...],
) -> dict[str, float | None] | None:
    out: dict[str, float | None] = {}
    seen = False
    for s in scores:
        if s is None:
            continue
        seen = True
        for k, v in s.items():
            old = out.get(k)
            out[k] = v if old is None else (old if v is None else max(old, v))
    return out if seen else None


class LiveCaseWriter:
    """Writes an ``open_case`` request as a live check record, frames as evidence."""

    def __init__(
        self,
        checks: CheckRepository,
        evidence: EvidenceStore | None = None,
        *,
        actor: str = "system:live-monitor",
    ) -> None:
        self.checks = checks
        self.evidence = evidence
        self.actor = actor

    def __call__(self, request: ActionRequest) -> LiveCaseRecord:
        """Write the record (usable directly as the monitor's ``open_case`` callback)."""
        return self.write(request)

    def write(self, request: ActionRequest, *, api_key_id: int | None = None) -> LiveCaseRecord:
        """Preserve the frames (when an evidence store is configured), then record the check.

        ``api_key_id`` is the key that started the monitoring (service only).
        """
        ctx = request.context
        content_id = str(uuid.uuid4())
        digests = [hashlib.sha256(png).hexdigest() for png in request.evidence_png]
        evidence_ids: list[str] = []
        evidence_error: str | None = None
        if self.evidence is not None:
            from safestream.evidence.store import BASIS_OTHER

            try:
                for i, png in enumerate(request.evidence_png):
                    record = self.evidence.preserve(
                        png,
                        actor=self.actor,
                        basis=BASIS_OTHER,
                        legal_basis=LEGAL_BASIS,
                        media_type="image/png",
                        account_id=ctx.account_id,
                        source=f"live:{ctx.stream_id}",
                        metadata={
                            "content_id": content_id,
                            "stream_id": ctx.stream_id,
                            "stream_time_s": request.sample_times_s[i]
                            if i < len(request.sample_times_s)
                            else None,
                            "pdq": request.frame_pdqs[i] if i < len(request.frame_pdqs) else None,
                            "stream_index": request.frame_streams[i]
                            if i < len(request.frame_streams)
                            else None,
                        },
                    )
                    evidence_ids.append(record.id)
            except SafestreamError as exc:  # the case matters more than the frames
                evidence_error = f"{error_kind(exc)}: {exc}"
                log.error(
                    "live evidence not preserved",
                    extra={"stream_id": ctx.stream_id, "error": evidence_error},
                )
        frames = [
            {
                "stream_time_s": round(t, 3),
                "stream_index": request.frame_streams[i]
                if i < len(request.frame_streams)
                else None,
                "pdq": request.frame_pdqs[i] if i < len(request.frame_pdqs) else None,
                "sha256": digests[i] if i < len(digests) else None,
                "scores": dict(request.frame_scores[i] or {})
                if i < len(request.frame_scores) and request.frame_scores[i] is not None
                else None,
                "evidence_id": evidence_ids[i] if i < len(evidence_ids) else None,
            }
            for i, t in enumerate(request.sample_times_s)
        ]
        signals: dict[str, Any] = {
            "pdq": request.frame_pdqs[0] if request.frame_pdqs else None,
            # SHA-256 of the preserved PNG of the first triggering frame.
            "sha256": digests[0] if digests else None,
            "live": {
                "stream_id": ctx.stream_id,
                "source": request.source,
                "stream_started_at": ctx.started_at.isoformat(),
                "detected_at": request.detected_at.isoformat(),
                "verdict": request.verdict,
                "sample_times_s": [round(t, 3) for t in request.sample_times_s],
                "frames": frames,
                "evidence_ids": evidence_ids,
                "evidence_error": evidence_error,
            },
        }
        times = ", ".join(f"{t:.1f} s" for t in request.sample_times_s)
        reasons = [
            f"live {request.verdict} on stream {ctx.stream_id} at stream time {times}",
            f"stream started {ctx.started_at.isoformat()}",
        ]
        self.checks.record(
            content_id=content_id,
            account_id=ctx.account_id,
            username=ctx.username,
            profile_url=ctx.profile_url,
            ip_address=ctx.ip_address,
            source_port=ctx.source_port,
            # For a stream, the client's time is when it started streaming.
            client_timestamp=ctx.started_at,
            surface=SURFACE,
            api_key_id=api_key_id,
            outcome="match" if request.matches else "no_match",
            signals=signals,
            matches=[m.to_dict() for m in request.matches],
            reasons=reasons,
            scores=_max_scores(request.frame_scores),
        )
        return LiveCaseRecord(content_id, tuple(evidence_ids), evidence_error)


__all__ = ["SURFACE", "LiveCaseRecord", "LiveCaseWriter", "evidence_from_env"]
