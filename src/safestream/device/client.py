"""The device SDK: check an image before it is encrypted and sent.

::

    guard = DeviceGuard(
        filter_source=HttpFilterSource("https://safety.example", api_key),
        evaluator=HttpEvaluator("https://safety.example", api_key),
        public_key=bytes.fromhex(PINNED_KEY_HEX),
    )
    decision = guard.check_image(jpeg_bytes)   # allow / warn / block, with a reason

The device hashes locally (PDQ, MD5, SHA-256), turns the hashes into filter keys,
blinds each key with a fresh random scalar and sends only the blinded elements.
It unblinds the answers and looks them up in the signed filter locally.  Neither
the hashes nor anything derived from them without a blind leave the device.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from safestream.device import oprf
from safestream.device.filter import (
    FilterVerificationError,
    SignedFilter,
    VerifiedFilter,
    parse_signature,
    verify_filter,
)
from safestream.device.keys import SEGMENTS, md5_key, pdq_segment_keys, sha256_key
from safestream.errors import ConfigError, SafestreamError

log = logging.getLogger(__name__)

Action = Literal["allow", "warn", "block"]
ACTIONS: tuple[str, ...] = ("allow", "warn", "block")


class DeviceUnavailableError(SafestreamError):
    """The server could not be reached or answered badly; the check could not run."""


@dataclass(frozen=True)
class Decision:
    """What to do with one image, and why (no hash or content in it)."""

    action: Action
    reason: str
    #: Position-tagged PDQ segments found in the filter (0..8).
    segment_hits: int = 0
    exact_hit: bool = False
    filter_version: int | None = None
    #: True when the decision was taken with a filter older than ``max_filter_age_s``.
    stale: bool = False
    #: Categories the local classifier flagged, if one ran.
    flagged: tuple[str, ...] = ()
    #: Suggested local intervention: "block_send", "blur", "warn" or "none".
    intervention: str = "none"
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "action": self.action,
            "reason": self.reason,
            "segment_hits": self.segment_hits,
            "exact_hit": self.exact_hit,
            "filter_version": self.filter_version,
            "stale": self.stale,
            "flagged": list(self.flagged),
            "intervention": self.intervention,
            "timings_ms": self.timings_ms,
        }


class FilterSource(Protocol):
    """Where the signed filter comes from."""

    def fetch(self) -> SignedFilter:
        """The filter file and its signature (raise DeviceUnavailableError when offline)."""


class Evaluator(Protocol):
    """Who evaluates blinded elements with the server's OPRF key."""

    def evaluate(self, elements: Sequence[bytes]) -> tuple[list[bytes], str]:
        """Evaluated elements in order, and the OPRF key id that produced them."""


@dataclass
class FileFilterSource:
    """A filter and signature on disk (``filter.bin`` and ``filter.sig``)."""

    path: Path
    signature_path: Path | None = None

    def fetch(self) -> SignedFilter:
        """Read both files."""
        sig_path = self.signature_path or self.path.with_suffix(".sig")
        try:
            return SignedFilter(self.path.read_bytes(), parse_signature(sig_path.read_text()))
        except OSError as exc:
            raise DeviceUnavailableError(f"cannot read the filter: {exc}") from None


def _request(url: str, api_key: str, body: bytes | None, timeout_s: float) -> tuple[bytes, Any]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    req.add_header("Authorization", f"Bearer {api_key}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        raise DeviceUnavailableError(f"server answered {exc.code} for {url}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeviceUnavailableError(f"cannot reach {url}: {exc}") from None


@dataclass
class HttpFilterSource:
    """``GET /v1/device/filter`` on a safestream server."""

    base_url: str
    api_key: str
    timeout_s: float = 30.0

    def fetch(self) -> SignedFilter:
        """Download the filter; its signature comes in the ``X-Filter-Signature`` header."""
        data, headers = _request(
            self.base_url.rstrip("/") + "/v1/device/filter", self.api_key, None, self.timeout_s
        )
        try:
            return SignedFilter(data, parse_signature(headers.get("X-Filter-Signature", "")))
        except SafestreamError as exc:
            raise DeviceUnavailableError(f"bad filter response: {exc}") from None


@dataclass
class HttpEvaluator:
    """``POST /v1/device/evaluate`` on a safestream server."""

    base_url: str
    api_key: str
    timeout_s: float = 10.0

    def evaluate(self, elements: Sequence[bytes]) -> tuple[list[bytes], str]:
        """One request for the whole batch (concatenated, base64)."""
        body = json.dumps({"blinded": base64.b64encode(b"".join(elements)).decode()}).encode()
        data, _ = _request(
            self.base_url.rstrip("/") + "/v1/device/evaluate", self.api_key, body, self.timeout_s
        )
        return parse_evaluation(data, len(elements))


def parse_evaluation(data: bytes, expected: int) -> tuple[list[bytes], str]:
    """Parse the server's answer: ``{"evaluated": base64, "oprf_key_id": str}``."""
    try:
        answer = json.loads(data)
        raw = base64.b64decode(answer["evaluated"], validate=True)
        key_id = str(answer["oprf_key_id"])
    except (ValueError, KeyError, TypeError):
        raise DeviceUnavailableError("the server's evaluation answer is malformed") from None
    if len(raw) != expected * oprf.ELEMENT_BYTES:
        raise DeviceUnavailableError("the server answered a different number of elements")
    return [raw[i : i + 32] for i in range(0, len(raw), 32)], key_id


@dataclass
class LocalEvaluator:
    """Evaluate in-process with a :class:`~safestream.device.server.DeviceServer` (tests, CLI)."""

    server: Any
    device: str = "local"

    def evaluate(self, elements: Sequence[bytes]) -> tuple[list[bytes], str]:
        """Call the server object directly."""
        return self.server.evaluate(list(elements), device=self.device), self.server.oprf_key_id()


def _check_action(name: str, value: str) -> Action:
    if value not in ACTIONS:
        raise ConfigError(f"{name} must be one of {list(ACTIONS)}, got {value!r}")
    return value  # type: ignore[return-value]


_INTERVENTION: dict[str, str] = {"block": "block_send", "warn": "warn", "allow": "none"}

#: An animation's frames checked besides its first: the first distinct ones (a frame within
#: :data:`FRAME_FOLD_BITS` of one already taken adds nothing). Every animation sends this
#: many frames' keys, padded with random ones, so the server learns only "animated", never
#: how many distinct frames: 2 + 8 x (1 + 6) = 58 blinded elements, within one request.
MAX_EXTRA_FRAMES = 6
#: Frames this close (PDQ bits) to one already checked are skipped.
FRAME_FOLD_BITS = 8
#: At most this many frames of an animation are decoded on the device looking for
#: distinct ones (a long animation is not refused: its later frames are not checked).
MAX_FRAMES_EXAMINED = 120


def _distinct_frames(
    first: str | None, frames: Iterable[tuple[int, str | None]]
) -> list[tuple[int, str]]:
    """(frame index, PDQ) of the first :data:`MAX_EXTRA_FRAMES` frames distinct from the
    first frame and from each other (frames of too low quality have no PDQ). ``frames``
    is consumed lazily: no frame is hashed once enough are taken."""
    from safestream.device.keys import hamming_hex

    taken: list[tuple[int, str]] = []
    seen = [first] if first is not None else []
    for index, pdq in frames:
        if index == 0 or pdq is None:
            continue
        if all(hamming_hex(pdq, other) > FRAME_FOLD_BITS for other in seen):
            taken.append((index, pdq))
            seen.append(pdq)
            if len(taken) == MAX_EXTRA_FRAMES:
                break
    return taken


def _frame_pdqs(data: bytes, mode: str) -> Iterator[tuple[int, str | None]] | None:
    """Lazily, (index, PDQ or None) of an animation's first :data:`MAX_FRAMES_EXAMINED`
    frames; None for a still image."""
    from safestream.signals.image import iter_frames_rgb
    from safestream.signals.pdq import DEFAULT_MIN_QUALITY, fast_pdq_from_pixels, pdq_from_rgb

    info, frames = iter_frames_rgb(data, max_frames=2**31 - 1)
    if info.n_frames <= 1:
        return None

    def pdqs() -> Iterator[tuple[int, str | None]]:
        for index, rgb in enumerate(itertools.islice(frames, MAX_FRAMES_EXAMINED)):
            if index == 0:
                continue  # the first frame is hashed with the file
            if mode == "exact":
                pdq, quality = pdq_from_rgb(rgb)
            else:
                pdq, quality, _ = fast_pdq_from_pixels(rgb)
            yield index, pdq if quality >= DEFAULT_MIN_QUALITY else None

    return pdqs()


class DeviceGuard:
    """Checks images on the device against the private block list; see the module doc.

    Confirmation: an exact (MD5/SHA-256) hit or at least ``min_segments_to_block``
    PDQ segments in the filter blocks; fewer segment hits take
    ``single_segment_action`` (default ``warn``: one segment is what distance 7
    guarantees, but also what a random 32-bit collision looks like).
    """

    def __init__(
        self,
        filter_source: FilterSource,
        evaluator: Evaluator,
        public_key: bytes,
        *,
        min_segments_to_block: int = 2,
        single_segment_action: str = "warn",
        offline_action: str = "allow",
        stale_action: str = "allow",
        max_filter_age_s: float = 7 * 24 * 3600,
        refresh_interval_s: float = 3600,
        classifier: Any = None,
        classifier_action: str = "warn",
        hash_mode: str = "fast",
    ) -> None:
        if len(public_key) != 32:
            raise ConfigError("the pinned public key is 32 bytes (Ed25519)")
        if not 1 <= min_segments_to_block <= 8:
            raise ConfigError("min_segments_to_block must be between 1 and 8")
        self.filter_source = filter_source
        self.evaluator = evaluator
        self.public_key = public_key
        self.min_segments_to_block = min_segments_to_block
        self.single_segment_action = _check_action("single_segment_action", single_segment_action)
        self.offline_action = _check_action("offline_action", offline_action)
        self.stale_action = _check_action("stale_action", stale_action)
        self.max_filter_age_s = max_filter_age_s
        self.refresh_interval_s = refresh_interval_s
        self.classifier = classifier
        self.classifier_action = _check_action("classifier_action", classifier_action)
        self.hash_mode = hash_mode
        self._filter: VerifiedFilter | None = None
        self._fetched_at = 0.0

    @property
    def filter(self) -> VerifiedFilter | None:
        """The verified filter in use, if any."""
        return self._filter

    def refresh(self) -> VerifiedFilter:
        """Fetch and verify the filter now; keep the old one if the new one fails."""
        signed = self.filter_source.fetch()
        verified = verify_filter(signed, self.public_key)
        if self._filter is not None and verified.header.version < self._filter.header.version:
            raise FilterVerificationError(
                "the server offered an older filter version than the one in use (rollback)"
            )
        self._filter = verified
        self._fetched_at = time.monotonic()
        return verified

    def _ensure_filter(self) -> tuple[VerifiedFilter | None, bool]:
        due = self._filter is None or time.monotonic() - self._fetched_at > self.refresh_interval_s
        if due:
            try:
                self.refresh()
            except (DeviceUnavailableError, FilterVerificationError) as exc:
                log.warning("device filter refresh failed", extra={"error": type(exc).__name__})
        stale = self._filter is None or time.monotonic() - self._fetched_at > self.max_filter_age_s
        return self._filter, stale

    def check_image(self, data: bytes) -> Decision:
        """Hash, blind, evaluate, look up, confirm; then the optional classifier layer.

        An animation (GIF, WebP, APNG...) is checked on its first frame and on up to
        :data:`MAX_EXTRA_FRAMES` more distinct frames, in the same request. Bytes that
        are not a readable image raise an :class:`~safestream.errors.ImageError`
        (nothing is sent for them).
        """
        from safestream.signals.hashing import hash_bytes

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        hashes = hash_bytes(data, mode=self.hash_mode)
        lazy = _frame_pdqs(data, self.hash_mode)
        frames = None if lazy is None else _distinct_frames(hashes.pdq, lazy)
        timings["hash_ms"] = (time.perf_counter() - t0) * 1000
        decision = self.check_hashes(hashes.md5, hashes.sha256, hashes.pdq, timings, frames=frames)
        if decision.action != "block" and self.classifier is not None:
            decision = self._classify(data, decision, timings)
        return decision

    def check_hashes(
        self,
        md5: str,
        sha256: str,
        pdq: str | None,
        timings: dict[str, float] | None = None,
        *,
        frames: Sequence[tuple[int, str]] | None = None,
    ) -> Decision:
        """Check hashes the app computed itself (hex); :meth:`check_image` calls this.

        ``frames``: an animation's other frames, (frame index, PDQ), at most
        :data:`MAX_EXTRA_FRAMES`; None for a still image. For an animation the
        request always carries :data:`MAX_EXTRA_FRAMES` frames' keys (random ones pad).
        """
        timings = {} if timings is None else timings
        if frames is not None and len(frames) > MAX_EXTRA_FRAMES:
            raise ConfigError(f"at most {MAX_EXTRA_FRAMES} extra frames are checked")
        filt, stale = self._ensure_filter()
        if filt is None:
            return Decision(
                self.offline_action,
                "no verified filter available (offline)",
                stale=True,
                intervention=_INTERVENTION[self.offline_action],
                timings_ms=timings,
            )
        keys = [md5_key(md5), sha256_key(sha256)]
        # Each PDQ's 8 segment keys: (frame label, first key index).
        groups: list[tuple[str, int]] = []
        if pdq is not None:
            groups.append(("first frame", len(keys)))
            keys += pdq_segment_keys(pdq)
        if frames is not None:
            for index, frame_pdq in frames:
                groups.append((f"frame {index}", len(keys)))
                keys += pdq_segment_keys(frame_pdq)
            # Random keys for the frames not there: the count says nothing.
            pad = SEGMENTS * (MAX_EXTRA_FRAMES - len(frames))
            keys += [secrets.token_bytes(16) for _ in range(pad)]
        t0 = time.perf_counter()
        states = [oprf.blind(k) for k in keys]
        try:
            evaluated, key_id = self.evaluator.evaluate([s.element for s in states])
            if key_id != filt.header.oprf_key_id:
                # The server rotated its OPRF key: the matching filter is newer.
                filt = self.refresh()
                if key_id != filt.header.oprf_key_id:
                    raise DeviceUnavailableError("the server's OPRF key does not match its filter")
            outputs = [oprf.finalize(s, e) for s, e in zip(states, evaluated, strict=True)]
        except (DeviceUnavailableError, FilterVerificationError, oprf.OprfError) as exc:
            log.warning("device evaluation failed", extra={"error": type(exc).__name__})
            return Decision(
                self.offline_action,
                "the block-list check could not run (server unreachable or invalid answer)",
                filter_version=filt.header.version,
                stale=stale,
                intervention=_INTERVENTION[self.offline_action],
                timings_ms=timings,
            )
        timings["oprf_ms"] = (time.perf_counter() - t0) * 1000
        real = 2 + SEGMENTS * len(groups)
        hits = filt.bloom.contains(outputs[:real])  # the padding is never looked up
        exact = hits[0] or hits[1]
        per_frame = [(sum(hits[start : start + SEGMENTS]), label) for label, start in groups]
        segments, where = max(per_frame, default=(0, ""))
        if len(groups) > 1 and segments:
            where = f" in the {where}" if where == "first frame" else f" in {where}"
        else:
            where = ""
        version = filt.header.version
        log.debug("device check", extra={"segment_hits": segments, "exact_hit": exact})
        if exact or segments >= self.min_segments_to_block:
            why = "exact file hash" if exact else f"{segments} of 8 PDQ segments{where}"
            return Decision(
                "block",
                f"matches the block list ({why})",
                segments,
                exact,
                version,
                stale,
                intervention="block_send",
                timings_ms=timings,
            )
        if segments:
            return Decision(
                self.single_segment_action,
                f"{segments} PDQ segment(s) in the block list{where}, fewer than the "
                f"{self.min_segments_to_block} that confirm a match",
                segments,
                False,
                version,
                stale,
                intervention=_INTERVENTION[self.single_segment_action],
                timings_ms=timings,
            )
        if stale:
            return Decision(
                self.stale_action,
                "no match, but the filter is out of date",
                0,
                False,
                version,
                True,
                intervention=_INTERVENTION[self.stale_action],
                timings_ms=timings,
            )
        return Decision(
            "allow", "no match in the block list", 0, False, version, False, timings_ms=timings
        )

    def _classify(self, data: bytes, decision: Decision, timings: dict[str, float]) -> Decision:
        from safestream.classify import classify_bytes

        t0 = time.perf_counter()
        result = classify_bytes(self.classifier, data)
        timings["classify_ms"] = (time.perf_counter() - t0) * 1000
        if not result.flagged:
            return decision
        order = {"allow": 0, "warn": 1, "block": 2}
        action = max(decision.action, self.classifier_action, key=order.__getitem__)
        return Decision(
            action,
            f"{decision.reason}; local classifier flagged {', '.join(result.flagged)}",
            decision.segment_hits,
            decision.exact_hit,
            decision.filter_version,
            decision.stale,
            tuple(result.flagged),
            "block_send" if action == "block" else "blur",
            timings,
        )


def obscured(data: bytes, method: str = "blur", warning: str | None = None) -> bytes:
    """The image obscured as a PNG (a local intervention for a ``warn`` decision)."""
    import io

    from PIL import Image

    from safestream.classify.obscure import obscure
    from safestream.signals.image import decode_rgb

    _, rgb = decode_rgb(data)
    out = obscure(rgb, method, warning=warning)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, "PNG")
    return buf.getvalue()
