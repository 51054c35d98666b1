"""CLI commands ``safestream video ...`` and ``safestream monitor`` (registered by ``cli``).

This module must not import :mod:`safestream.cli`; ``ctx.obj`` offers ``store()``,
``repo()`` and ``snapshot_dir()``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from safestream.cli_support import cli_errors
from safestream.errors import SafestreamError, error_kind

EXIT_MATCHED = 1
EXIT_ERROR = 2


_errors = cli_errors


def _line(obj: Any) -> None:
    click.echo(json.dumps(obj))


def _sampling(fn: Any) -> Any:
    fn = click.option(
        "--fps",
        "sample_fps",
        type=click.FloatRange(min=0.0, min_open=True),
        default=1.0,
        show_default=True,
        help="Frames sampled per second of video.",
    )(fn)
    fn = click.option("--every-frame", is_flag=True, help="Hash every frame (overrides --fps).")(fn)
    fn = click.option(
        "--fold-bits",
        type=click.IntRange(-1, 256),
        default=8,
        show_default=True,
        help="Fold consecutive samples within this many bits (-1: keep all).",
    )(fn)
    fn = click.option(
        "--max-side",
        type=click.IntRange(16),
        default=None,
        help="Scale frames down to this longer side before hashing (faster; drifts a few bits).",
    )(fn)
    return fn


def _hash(
    path: Path, sample_fps: float, every_frame: bool, fold_bits: int, max_side: int | None
) -> Any:
    from safestream.signals.video import hash_video

    return hash_video(
        path,
        sample_fps=None if every_frame else sample_fps,
        fold_bits=None if fold_bits < 0 else fold_bits,
        max_side=max_side,
    )


@click.group("video")
def video() -> None:
    """Video files: per-frame PDQ (vPDQ), video banks, matching."""


@video.command("hash")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_sampling
@click.option("--vpdq", "as_vpdq", is_flag=True, help="vPDQ text (one file only) instead of JSON.")
def video_hash(
    files: tuple[Path, ...],
    sample_fps: float,
    every_frame: bool,
    fold_bits: int,
    max_side: int | None,
    as_vpdq: bool,
) -> None:
    """Hash video FILES: MD5, SHA-256 and sampled frame PDQs; one JSON object per file."""
    from safestream.signals.video import write_vpdq

    if as_vpdq and len(files) != 1:
        raise click.UsageError("--vpdq takes exactly one file")
    status = 0
    for path in files:
        try:
            h = _hash(path, sample_fps, every_frame, fold_bits, max_side)
        except SafestreamError as exc:
            if as_vpdq:
                click.echo(f"error: {exc}", err=True)
                sys.exit(EXIT_ERROR)
            _line({"path": str(path), "error": error_kind(exc), "message": str(exc)})
            status = EXIT_ERROR
            continue
        if as_vpdq:
            click.echo(write_vpdq(h.frames), nl=False)
        else:
            _line({"path": str(path), **h.to_dict()})
    sys.exit(status)


@video.command("bank-add")
@click.argument("bank")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_sampling
@click.option("--external-id", default=None, help="The list provider's id for the video.")
@click.option("--source", default=None, help="Provenance of the entry (e.g. NCMEC).")
@click.option("--label", "labels", multiple=True, help="A label (repeatable).")
@click.pass_obj
def video_bank_add(
    obj: Any,
    bank: str,
    files: tuple[Path, ...],
    sample_fps: float,
    every_frame: bool,
    fold_bits: int,
    max_side: int | None,
    external_id: str | None,
    source: str | None,
    labels: tuple[str, ...],
) -> None:
    """Add video FILES to BANK: file MD5/SHA-256 plus one PDQ entry per kept frame."""
    from safestream.engine.video import add_video

    with _errors():
        repo = obj.repo()
        repo.get_bank(bank)  # fail before decoding anything
        for path in files:
            h = _hash(path, sample_fps, every_frame, fold_bits, max_side)
            _line(
                {
                    "path": str(path),
                    **add_video(
                        repo, bank, h, external_id=external_id, source=source, labels=labels
                    ),
                }
            )


@video.command("match")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_sampling
@click.option(
    "--query-percent",
    type=click.FloatRange(0, 100),
    default=80.0,
    show_default=True,
    help="Share of the query's frames that must match a bank video (vPDQ).",
)
@click.option(
    "--coverage-percent",
    type=click.FloatRange(0, 100),
    default=80.0,
    show_default=True,
    help="Share of the bank video that must be covered (vPDQ; also the clip rule).",
)
@click.option("--no-clips", is_flag=True, help="Do not report known clips inside longer videos.")
@click.pass_obj
def video_match(
    obj: Any,
    files: tuple[Path, ...],
    sample_fps: float,
    every_frame: bool,
    fold_bits: int,
    max_side: int | None,
    query_percent: float,
    coverage_percent: float,
    no_clips: bool,
) -> None:
    """Match video FILES against every enabled bank; exit 1 when one matched, 2 on errors."""
    from safestream.engine import Engine
    from safestream.engine.video import match_video

    with _errors():
        engine = Engine.open(obj.store(), snapshot_dir=obj.snapshot_dir())
    matched = errors = False
    for path in files:
        try:
            h = _hash(path, sample_fps, every_frame, fold_bits, max_side)
            found = match_video(
                engine,
                h,
                query_match_percent=query_percent,
                compared_match_percent=coverage_percent,
                clips=not no_clips,
            )
        except SafestreamError as exc:
            _line({"path": str(path), "error": error_kind(exc), "message": str(exc)})
            errors = True
            continue
        hit = any(m.matched and not m.is_allow_list for m in found)
        matched = matched or hit
        _line(
            {
                "path": str(path),
                "md5": h.md5,
                "sha256": h.sha256,
                "matched": hit,
                "frames": len(h.frames),
                "videos": [m.to_dict() for m in found],
            }
        )
    sys.exit(EXIT_ERROR if errors else EXIT_MATCHED if matched else 0)


@click.command("monitor")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--fps",
    "sample_fps",
    type=click.FloatRange(min=0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Samples per second per stream.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Worker threads shared by all streams (hash, lookup, classifier; one core each). "
    "Default: the cores this process may use.",
)
@click.option(
    "--queue",
    "per_stream_queue",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Samples waiting per stream before the oldest is dropped.",
)
@click.option(
    "--listen", is_flag=True, help="Act as the RTMP/RTSP server the broadcaster pushes to."
)
@click.option(
    "--no-realtime", is_flag=True, help="Read files as fast as possible (default: at real time)."
)
@click.option("--account", default=None, help="Account id of the streamer (one source).")
@click.option("--username", default=None, help="Streamer's username (one source).")
@click.option("--profile-url", default=None, help="Streamer's profile URL (one source).")
@click.option("--ip", "ip_address", default=None, help="Streamer's IP address (one source).")
@click.option(
    "--port",
    "source_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Streamer's source port.",
)
@click.option(
    "--model", "models", multiple=True, help="Also score samples with this classifier (repeatable)."
)
@click.option(
    "--window",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Classifier rule: the last N samples...",
)
@click.option(
    "--min-flagged",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="...of which K score over --threshold.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="Classifier score that flags a sample.",
)
@click.option(
    "--decode",
    "strategy",
    type=click.Choice(["lazy", "keyframe", "all"]),
    default="lazy",
    show_default=True,
    help="How much video is decoded: lazy (from the last keyframe only when a sample is due).",
)
@click.option(
    "--no-ip-chain",
    is_flag=True,
    help="Decode B-pictures too (H.264): samples are then the first frame at or after "
    "each due time rather than the first I/P picture; costs ~15-30 % more CPU.",
)
@click.option(
    "--skip-loop-filter",
    # safestream.live.ingest.LOOP_FILTER_SKIPS / DEFAULT_LOOP_FILTER_SKIP (not imported
    # here: the live package loads the engine; a test keeps the two in step).
    type=click.Choice(["none", "noref", "bidir", "nokey", "all"]),
    default="noref",
    show_default=True,
    help="Pictures decoded without deblocking: 'all' saves ~7-11 % CPU but drifts a few "
    "PDQ bits (more with long GOPs).",
)
@click.option(
    "--video-streams",
    # safestream.live.ingest.VIDEO_STREAM_CHOICES (not imported here, as above).
    type=click.Choice(["all", "preferred"]),
    default="all",
    show_default=True,
    help="Which of a source's video streams are sampled: every one (a source with more "
    "than --max-video-streams ends with an error), or only the one players pick.",
)
@click.option(
    "--max-video-streams",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Most video streams one source may carry (each is decoded and sampled).",
)
@click.option(
    "--hwaccel",
    default=None,
    metavar="TYPE",
    help="Decode on this FFmpeg hardware device type (cuda: NVIDIA NVDEC) instead of the "
    "CPU; a source whose device cannot be opened ends with an error (no fallback).",
)
@click.option(
    "--no-cases",
    is_flag=True,
    help="Do not write open_case detections to the store (events only).",
)
@click.pass_obj
def monitor(
    obj: Any,
    sources: tuple[str, ...],
    sample_fps: float,
    workers: int | None,
    per_stream_queue: int,
    listen: bool,
    no_realtime: bool,
    account: str | None,
    username: str | None,
    profile_url: str | None,
    ip_address: str | None,
    source_port: int | None,
    models: tuple[str, ...],
    window: int,
    min_flagged: int,
    threshold: float,
    strategy: str,
    no_ip_chain: bool,
    skip_loop_filter: str,
    video_streams: str,
    max_video_streams: int,
    hwaccel: str | None,
    no_cases: bool,
) -> None:
    """Monitor live SOURCES (paths, URLs, or - for MPEG-TS on stdin): one JSON event per line.

    Each sample is matched against every enabled bank; a match ends the stream and
    opens a case: a check record with surface "live" (picked up by ``safestream cases
    sync``), its frames preserved encrypted when evidence keys are configured.
    Exit status: 0, or 2 when a stream failed.
    """
    from safestream.engine import Engine
    from safestream.live import (
        ActionRequest,
        Monitor,
        SampleAnalyzer,
        Source,
        StreamContext,
        TemporalPolicy,
    )
    from safestream.live.cases import LiveCaseWriter, evidence_from_env
    from safestream.requests.nondisclosure import identifiers_of, nondisclosure_applies
    from safestream.store.service import CheckRepository

    with _errors():
        engine = Engine.open(obj.store(), snapshot_dir=obj.snapshot_dir())
        scorer = None
        scorer_size = None
        if models:
            from safestream.classify import combine_scores, load_classifier, shared_stretch_size

            loaded = [load_classifier(name) for name in models]
            scorer_size = shared_stretch_size(loaded)

            def scorer(rgb: Any) -> Any:
                return combine_scores(c.classify(rgb) for c in loaded)

        policy = TemporalPolicy(window=window, min_flagged=min_flagged, score_threshold=threshold)
        callbacks = {}
        if not no_cases:
            writer = LiveCaseWriter(
                CheckRepository(obj.store()), evidence_from_env(obj.store()), actor="cli:monitor"
            )

            def open_case(request: ActionRequest) -> None:
                try:
                    written = writer.write(request)
                except SafestreamError as exc:
                    mon.emit(
                        {
                            "event": "case_error",
                            "stream_id": request.context.stream_id,
                            "error": error_kind(exc),
                            "message": str(exc),
                        }
                    )
                    return
                mon.emit(
                    {"event": "case", "stream_id": request.context.stream_id, **written.to_dict()}
                )

            callbacks["open_case"] = open_case
        mon = Monitor(
            SampleAnalyzer(engine, scorer, scorer_size=scorer_size),
            policy=policy,
            sample_fps=sample_fps,
            workers=workers,
            per_stream_queue=per_stream_queue,
            on_event=lambda e: click.echo(json.dumps(e)),
            actions=callbacks,
            strategy=strategy,
            ip_chain=not no_ip_chain,
            skip_loop_filter=skip_loop_filter,
            video_streams=video_streams,
            max_video_streams=max_video_streams,
            silenced=lambda ctx: nondisclosure_applies(obj.store(), identifiers_of(ctx)),
        )
        sessions = []
        try:
            for i, spec in enumerate(sources):
                src = Source.parse(
                    spec,
                    listen=listen,
                    realtime=False if no_realtime else None,
                    hwaccel=hwaccel,
                )
                ctx = StreamContext(
                    f"stream-{i + 1}",
                    account_id=account,
                    username=username,
                    profile_url=profile_url,
                    ip_address=ip_address,
                    source_port=source_port,
                )
                sessions.append(mon.add(src, ctx))
            mon.wait()
        except KeyboardInterrupt:
            pass
        finally:
            mon.close()
    sys.exit(EXIT_ERROR if any(s.error for s in sessions) else 0)


COMMANDS: list[click.Command] = [video, monitor]
