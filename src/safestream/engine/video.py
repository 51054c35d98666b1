"""Videos in banks, and matching a video against every enabled bank.

Storage: a banked video is **ordinary bank entries**, so every existing path (the
change log, the in-memory index, export, the live monitor's per-frame lookup) works on
video frames unchanged and with no schema change:

* one ``md5`` and one ``sha256`` entry for the file (hotlines list videos by MD5);
* one ``pdq`` entry per kept (folded, good-quality) frame, tagged with the labels
  ``video:<sha256>`` (which video), ``video-frames:<n>`` (how many frame entries the
  video has: the denominator of its coverage) and ``vframe:<frame_number>@<seconds>``.

Caveat: a bank keeps one entry per (signal type, value), so a frame hash that is
already in the bank (another video's identical frame) is not stored twice; that video's
coverage then tops out below 100 %. Frame hashes of real videos rarely collide exactly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from safestream.banks.formats import HashRecord
from safestream.banks.model import Bank, BankEntry
from safestream.engine.check import Engine, apply_allow_list
from safestream.engine.verdict import ContentContext, Match, Outcome, Verdict
from safestream.signals.pdq import DEFAULT_MIN_QUALITY
from safestream.signals.video import (
    DEFAULT_MATCH_PERCENT,
    FrameHash,
    VideoHashes,
)
from safestream.store.banks import BankRepository

VIDEO_LABEL = "video:"
FRAMES_LABEL = "video-frames:"
FRAME_LABEL = "vframe:"


def video_records(
    hashes: VideoHashes,
    *,
    external_id: str | None = None,
    source: str | None = None,
    labels: tuple[str, ...] = (),
    min_quality: int = DEFAULT_MIN_QUALITY,
) -> list[HashRecord]:
    """Bank records for a video: its file digests and its good frames, tagged."""
    frames: list[FrameHash] = []
    seen: set[str] = set()
    for f in hashes.frames:
        if f.quality >= min_quality and f.pdq not in seen:
            seen.add(f.pdq)
            frames.append(f)
    tag = (*labels, f"{VIDEO_LABEL}{hashes.sha256}")
    records = [
        HashRecord("md5", hashes.md5, external_id, source, tag),
        HashRecord("sha256", hashes.sha256, external_id, source, tag),
    ]
    records += [
        HashRecord(
            "pdq",
            f.pdq,
            external_id,
            source,
            (
                *tag,
                f"{FRAMES_LABEL}{len(frames)}",
                f"{FRAME_LABEL}{f.frame_number}@{f.timestamp_s:.3f}",
            ),
        )
        for f in frames
    ]
    return records


def add_video(
    repo: BankRepository,
    bank: str,
    hashes: VideoHashes,
    *,
    external_id: str | None = None,
    source: str | None = None,
    labels: tuple[str, ...] = (),
    min_quality: int = DEFAULT_MIN_QUALITY,
) -> dict[str, Any]:
    """Add a video to a bank; returns counts of what was added."""
    records = video_records(
        hashes, external_id=external_id, source=source, labels=labels, min_quality=min_quality
    )
    ids, duplicates = repo.add_entries(bank, records)
    return {
        "bank": bank,
        "sha256": hashes.sha256,
        "md5": hashes.md5,
        "frame_entries": len(records) - 2,
        "entries_added": len(ids),
        "duplicates": duplicates,
    }


def _as_match(bank: Bank, entry: BankEntry, distance_bits: int) -> Match:
    return Match(
        bank=bank.name,
        bank_id=bank.id,
        entry_id=entry.id,
        signal_type=entry.signal_type,
        distance_bits=distance_bits,
        threshold_bits=bank.pdq_threshold,
        is_allow_list=bank.is_allow_list,
        external_id=entry.external_id,
        source=entry.source,
        labels=entry.labels,
    )


def _label(labels: tuple[str, ...], prefix: str) -> str | None:
    for label in labels:
        if label.startswith(prefix):
            return label[len(prefix) :]
    return None


@dataclass(frozen=True)
class BankVideoMatch:
    """A banked video that the query video matched."""

    bank: str
    video_sha256: str
    external_id: str | None
    labels: tuple[str, ...]
    #: Share (0..100) of the query's good frames matching a frame of the bank video.
    query_match_percent: float
    #: Share (0..100) of the bank video's frames matched by some query frame.
    bank_coverage_percent: float
    #: Query timestamps (seconds) of the first and last matching frame.
    first_match_s: float
    last_match_s: float
    #: The whole file is the banked one (MD5/SHA-256).
    exact_file: bool
    is_allow_list: bool
    #: vPDQ's rule (both shares over their thresholds), an exact file, or a clip
    #: (bank coverage over its threshold) when clips are looked for.
    matched: bool
    kind: str
    #: A bank entry of the video (a frame or the file digest), for verdicts and actions.
    entry: Match | None = field(default=None, compare=False)
    #: The query file's video stream that matched (:attr:`VideoHashes.stream_index`).
    stream_index: int = 0
    #: Matched in frames the file's edit list hides from players (read ignoring it).
    edit_list_ignored: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "bank": self.bank,
            "video_sha256": self.video_sha256,
            "external_id": self.external_id,
            "labels": list(self.labels),
            "query_match_percent": round(self.query_match_percent, 2),
            "bank_coverage_percent": round(self.bank_coverage_percent, 2),
            "first_match_s": round(self.first_match_s, 3),
            "last_match_s": round(self.last_match_s, 3),
            "exact_file": self.exact_file,
            "is_allow_list": self.is_allow_list,
            "matched": self.matched,
            "kind": self.kind,
            "stream_index": self.stream_index,
            "edit_list_ignored": self.edit_list_ignored,
        }


def match_video(
    engine: Engine,
    hashes: VideoHashes,
    *,
    min_quality: int = DEFAULT_MIN_QUALITY,
    query_match_percent: float = DEFAULT_MATCH_PERCENT,
    compared_match_percent: float = DEFAULT_MATCH_PERCENT,
    clips: bool = True,
) -> list[BankVideoMatch]:
    """Banked videos that ``hashes`` matches, best first (every bank's own PDQ threshold).

    A banked video matches when vPDQ's rule holds (query share and bank coverage both
    at or above their thresholds), when the file itself is banked, or — with
    ``clips`` — when the bank video is covered at or above ``compared_match_percent``
    however small a part of the query it is (a known clip inside a long video).

    Every video stream of the file is matched (a decoy first track must not hide the
    one players show); per banked video the best stream's result is kept.
    """
    best: dict[tuple[str, str], BankVideoMatch] = {}
    for stream in (hashes, *hashes.other_streams):
        for v in _match_stream(
            engine,
            stream,
            min_quality=min_quality,
            query_match_percent=query_match_percent,
            compared_match_percent=compared_match_percent,
            clips=clips,
        ):
            key = (v.bank, v.video_sha256)
            rank = (v.matched, v.bank_coverage_percent, v.query_match_percent)
            if key not in best or rank > (
                best[key].matched,
                best[key].bank_coverage_percent,
                best[key].query_match_percent,
            ):
                best[key] = v
    out = list(best.values())
    out.sort(key=lambda v: (not v.matched, -v.bank_coverage_percent, v.bank, v.video_sha256))
    return out


def _match_stream(
    engine: Engine,
    hashes: VideoHashes,
    *,
    min_quality: int,
    query_match_percent: float,
    compared_match_percent: float,
    clips: bool,
) -> list[BankVideoMatch]:
    """:func:`match_video` for one video stream of the file."""
    frames = [f for f in hashes.frames if f.quality >= min_quality]
    unique: dict[str, FrameHash] = {}
    for f in frames:
        unique.setdefault(f.pdq, f)
    query = list(unique.values())
    matches: list[Match] = engine.resolve(
        engine.matcher.search_exact("md5", hashes.md5)
        + engine.matcher.search_exact("sha256", hashes.sha256)
    )
    exact_videos: dict[tuple[str, str], Match] = {}
    for m in matches:
        file_sha = _label(m.labels, VIDEO_LABEL) or (
            hashes.sha256 if m.signal_type == "sha256" else hashes.md5
        )
        exact_videos[(m.bank, file_sha)] = m
    # Per bank video: which query frames hit it, and which of its frames were hit.
    query_hits: dict[tuple[str, str], set[int]] = defaultdict(set)
    entry_hits: dict[tuple[str, str], set[int]] = defaultdict(set)
    info: dict[tuple[str, str], tuple[Match, int]] = {}
    if query:
        hits = engine.matcher.search_pdq([f.pdq for f in query])
        entries = engine.repo.entries_by_ids({h.entry_id for h in hits})
        for hit in hits:
            entry = entries.get(hit.entry_id)
            if entry is None:
                continue
            vsha = _label(entry.labels, VIDEO_LABEL)
            vtotal = _label(entry.labels, FRAMES_LABEL)
            if vsha is None or vtotal is None:
                continue  # an image entry, not a video frame
            vbank = engine.matcher.banks.get(entry.bank_id)
            if vbank is None or not vbank.enabled or hit.distance_bits > vbank.pdq_threshold:
                continue
            key = (vbank.name, vsha)
            query_hits[key].add(hit.query_index)
            entry_hits[key].add(hit.entry_id)
            if key not in info:
                info[key] = (_as_match(vbank, entry, hit.distance_bits), int(vtotal))
    out: list[BankVideoMatch] = []
    for key in set(info) | set(exact_videos):
        bank, sha = key
        exact = key in exact_videos
        qi = query_hits.get(key, set())
        m, total = info[key] if key in info else (exact_videos[key], 0)
        qp = 100.0 * len(qi) / len(query) if query else 0.0
        cp = 100.0 * len(entry_hits.get(key, set())) / total if total else 0.0
        times = sorted(query[i].timestamp_s for i in qi)
        vpdq = qp >= query_match_percent and cp >= compared_match_percent
        clip = clips and cp >= compared_match_percent
        kind = "exact_file" if exact else "video" if vpdq else "clip" if clip else "partial"
        out.append(
            BankVideoMatch(
                bank=bank,
                video_sha256=sha,
                external_id=m.external_id,
                labels=tuple(
                    lbl
                    for lbl in m.labels
                    if not lbl.startswith((VIDEO_LABEL, FRAMES_LABEL, FRAME_LABEL))
                ),
                query_match_percent=100.0 if exact else qp,
                bank_coverage_percent=100.0 if exact else cp,
                first_match_s=times[0] if times else 0.0,
                last_match_s=times[-1] if times else hashes.duration_s,
                exact_file=exact,
                is_allow_list=m.is_allow_list,
                matched=exact or vpdq or clip,
                kind=kind,
                entry=m,
                stream_index=hashes.stream_index,
                edit_list_ignored=hashes.edit_list_ignored,
            )
        )
    return out


# ---------------------------------------------------------------------------
# A whole video check: file digests, every frame against image banks, banked videos


@dataclass(frozen=True)
class FrameMatch:
    """A sampled frame of the video that matched a (non-video) PDQ bank entry."""

    #: Seconds from the first frame; the frame stands until ``until_s`` (next kept sample).
    timestamp_s: float
    until_s: float
    frame_number: int
    match: Match
    #: The file's video stream the frame is in (:attr:`VideoHashes.stream_index`).
    stream_index: int = 0
    #: The frame is one the file's edit list hides from players (read ignoring it).
    edit_list_ignored: bool = False
    #: A scene change between two samples (a frame unlike the one before), not a sample.
    scene_change: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the match plus where in the video it is."""
        return {
            "timestamp_s": round(self.timestamp_s, 3),
            "until_s": round(self.until_s, 3),
            "frame_number": self.frame_number,
            "stream_index": self.stream_index,
            "edit_list_ignored": self.edit_list_ignored,
            "scene_change": self.scene_change,
            **self.match.to_dict(),
        }


@dataclass(frozen=True)
class VideoCheck:
    """The outcome of checking one video: an engine verdict plus where it matched."""

    verdict: Verdict
    frame_matches: tuple[FrameMatch, ...]
    videos: tuple[BankVideoMatch, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the verdict's keys, ``kind``, ``frame_matches``, ``videos``)."""
        return {
            **self.verdict.to_dict(),
            "kind": "video",
            "frame_matches": [f.to_dict() for f in self.frame_matches],
            "videos": [v.to_dict() for v in self.videos],
        }


def video_signals(hashes: VideoHashes) -> dict[str, Any]:
    """The signals of a video as a check record keeps them (``kind: video``)."""
    return {"kind": "video", **hashes.to_dict()}


def check_video(
    engine: Engine,
    hashes: VideoHashes,
    context: ContentContext | None = None,
    *,
    min_quality: int | None = None,
    query_match_percent: float = DEFAULT_MATCH_PERCENT,
    compared_match_percent: float = DEFAULT_MATCH_PERCENT,
    clips: bool = True,
) -> VideoCheck:
    """Check a hashed video against every enabled bank.

    Three kinds of evidence make a match: the file's MD5/SHA-1/SHA-256 in a bank;
    a sampled frame within a bank's PDQ threshold of an image entry (a known image
    shown in the video, with its timestamp); a banked video matched by
    :func:`match_video` (vPDQ's rule, or a known clip inside this video). Allow-list
    banks suppress as in image checks: an exact allow-list hit suppresses everything,
    a perceptual one only perceptual matches.
    """
    quality = engine.options.min_quality if min_quality is None else min_quality
    reasons: list[str] = []
    exact = engine.resolve(
        [
            hit
            for signal_type, value in (
                ("md5", hashes.md5),
                ("sha1", hashes.sha1),
                ("sha256", hashes.sha256),
            )
            if value
            for hit in engine.matcher.search_exact(signal_type, value)
        ]
    )
    streams = (hashes, *hashes.other_streams)
    frame_matches = [m for h in streams for m in _frame_matches(engine, h, quality)]
    videos = match_video(
        engine,
        hashes,
        min_quality=quality,
        query_match_percent=query_match_percent,
        compared_match_percent=compared_match_percent,
        clips=clips,
    )
    good = sum(1 for h in streams for f in h.frames if f.quality >= quality)
    if good == 0:
        reasons.append(
            f"no sampled frame has PDQ quality {quality} or more: perceptual matching "
            "skipped, file digests checked"
        )
    best: dict[int, Match] = {}
    for m in [*exact, *(f.match for f in frame_matches)]:
        if m.entry_id not in best or m.distance_bits < best[m.entry_id].distance_bits:
            best[m.entry_id] = m
    for v in videos:
        if v.matched and v.entry is not None and v.entry.entry_id not in best:
            best[v.entry.entry_id] = v.entry
    matches = sorted(best.values(), key=lambda m: (m.distance_bits, m.bank, m.entry_id))
    block, suppressed, allow = apply_allow_list(matches, reasons)
    blocked = {m.entry_id for m in block}
    for m in exact:
        if m.entry_id in blocked:
            reasons.append(f"{m.signal_type} of the file matches bank {m.bank!r}")
    seen_frames: set[int] = set()
    for f in frame_matches:
        if f.match.entry_id in blocked and f.match.entry_id not in seen_frames:
            seen_frames.add(f.match.entry_id)
            where = (
                ""
                if f.stream_index == hashes.stream_index
                else f" of video stream {f.stream_index}"
            ) + (" (hidden by the file's edit list)" if f.edit_list_ignored else "")
            where += " (a scene change between samples)" if f.scene_change else ""
            reasons.append(
                f"frame at {f.timestamp_s:.3f} s{where} matches an image of bank "
                f"{f.match.bank!r} at {f.match.distance_bits} bits "
                f"(threshold {f.match.threshold_bits})"
            )
    for v in videos:
        if v.is_allow_list:
            continue
        span = f"{v.first_match_s:.3f}-{v.last_match_s:.3f} s" + (
            " (frames hidden by the file's edit list)" if v.edit_list_ignored else ""
        )
        if v.matched and v.kind != "exact_file":
            reasons.append(
                f"banked video of bank {v.bank!r} matched ({v.kind}) at {span}: "
                f"{v.bank_coverage_percent:.0f} % of it covered"
            )
        elif not v.matched:
            reasons.append(
                f"part of a banked video of bank {v.bank!r} seen at {span} "
                f"({v.bank_coverage_percent:.0f} % covered, below the threshold)"
            )
    outcome: Outcome = "match" if block else "suppressed" if suppressed else "no_match"
    if outcome == "no_match" and not reasons:
        reasons.append("no bank entry within threshold")
    verdict = Verdict(
        outcome=outcome,
        matches=tuple(block),
        suppressed=tuple(suppressed),
        allow_matches=tuple(allow),
        reasons=tuple(reasons),
        signals=video_signals(hashes),
        context=context,
    )
    return VideoCheck(verdict, tuple(frame_matches), tuple(videos))


def _frame_matches(engine: Engine, hashes: VideoHashes, min_quality: int) -> list[FrameMatch]:
    """Sampled (and scene-change) frames within a bank's threshold of an image
    (non-video) PDQ entry."""
    ordered = sorted(hashes.frames, key=lambda f: f.timestamp_s)
    # A folded frame stands for the samples up to the next kept one; a scene-change
    # frame for itself.
    until = {
        id(f): (ordered[i + 1].timestamp_s if i + 1 < len(ordered) else hashes.duration_s)
        for i, f in enumerate(ordered)
    }
    until.update({id(f): f.timestamp_s for f in hashes.scene_frames})
    scene = {id(f) for f in hashes.scene_frames}
    frames = [f for f in (*ordered, *hashes.scene_frames) if f.quality >= min_quality]
    if not frames:
        return []
    hits = engine.matcher.search_pdq([f.pdq for f in frames])
    if not hits:
        return []
    entries = engine.repo.entries_by_ids({h.entry_id for h in hits})
    out: list[FrameMatch] = []
    for hit in hits:
        entry = entries.get(hit.entry_id)
        if entry is None or _label(entry.labels, VIDEO_LABEL) is not None:
            continue  # removed since the index refresh, or a video's frame (match_video)
        bank = engine.matcher.banks.get(entry.bank_id)
        if bank is None or not bank.enabled or hit.distance_bits > bank.pdq_threshold:
            continue
        f = frames[hit.query_index]
        out.append(
            FrameMatch(
                timestamp_s=f.timestamp_s,
                until_s=max(f.timestamp_s, until[id(f)]),
                frame_number=f.frame_number,
                match=_as_match(bank, entry, hit.distance_bits),
                stream_index=hashes.stream_index,
                edit_list_ignored=hashes.edit_list_ignored,
                scene_change=id(f) in scene,
            )
        )
    out.sort(key=lambda m: (m.timestamp_s, m.match.distance_bits, m.match.entry_id))
    return out
