"""The ``video_check`` job: check an uploaded video too long to check in the request.

``POST /v1/check`` checks a short video at once; a longer one (over
``SAFESTREAM_VIDEO_SYNC_MAX_S``, or of unknown duration) is written to
``<upload folder>/video-checks`` (:func:`upload_dir`) and answered 202 with this job. The worker hashes it,
checks it (:func:`safestream.engine.video.check_video`), classifies its sampled frames
when the request's server had classifiers configured (the payload's ``classify``:
:func:`classify_payload`), records the check and runs
the policy's actions exactly as the request would have, stores the response body as
the job's result (``GET /v1/jobs/{id}``), and deletes the uploaded bytes.

Recording is idempotent per ``content_id`` (an attempt that died after recording does
not record twice); actions run again on such a retry — the webhook job and the review
item are deduplicated by their own keys, so they are delivered at least once. A video
that turns out corrupt is a permanent failure: the job goes dead with the decoder's
message, the bytes are deleted, and no check record is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from safestream.actions.base import ActionEnv
from safestream.actions.finish import CheckSinks, finish_check
from safestream.actions.runner import ActionRunner
from safestream.actions.webhook import WebhookConfig
from safestream.classify.base import Classifier
from safestream.classify.video import FrameScorer, TemporalRule, VideoClassification
from safestream.engine.check import Engine, EngineOptions
from safestream.engine.policy import DEFAULT_POLICY, Policy
from safestream.engine.verdict import ContentContext
from safestream.engine.video import VideoCheck, check_video
from safestream.errors import NotFoundError
from safestream.jobs.bank_import import upload_dir as bank_upload_dir
from safestream.jobs.base import JobContext, PermanentJobError
from safestream.signals.video import DEFAULT_MAX_FRAME_PIXELS, VideoError, hash_video
from safestream.store.db import Store
from safestream.store.jobs import Job, JobRepository
from safestream.store.reviews import ReviewRepository
from safestream.store.service import CheckRepository

log = logging.getLogger(__name__)

#: The job kind of asynchronous video checks.
JOB_KIND = "video_check"
#: A corrupt video fails for good at once; these cover a worker dying mid-check.
MAX_ATTEMPTS = 3
ENV_POLICY_FILE = "SAFESTREAM_POLICY_FILE"


def upload_dir(store: Store, environ: Mapping[str, str] | None = None) -> Path:
    """Where uploaded videos wait for their job: ``video-checks`` in the upload folder.

    The upload folder is the one async bank imports use (``SAFESTREAM_UPLOAD_DIR``);
    with several hosts it must be shared storage, mounted at the same path.
    """
    return bank_upload_dir(store, environ) / "video-checks"


def save_upload(directory: Path, content_id: str, data: bytes) -> Path:
    """Write uploaded bytes for a job (temporary name, then rename: never half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{content_id}.video"
    tmp = directory / f".{content_id}.part"
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def with_classification(checked: VideoCheck, classified: VideoClassification) -> VideoCheck:
    """The check with the frames' scores: per category the highest over the frames.

    The verdict's ``scores`` are what an image check's are, so the policy's
    ``min_scores`` rules apply unchanged; the temporal rule adds a reason per
    category it flags.
    """
    verdict = replace(
        checked.verdict,
        scores=dict(classified.max_scores),
        reasons=(*checked.verdict.reasons, *classified.reasons()),
    )
    return replace(checked, verdict=verdict)


def finish_video_check(
    checked: VideoCheck,
    sinks: CheckSinks,
    *,
    content_id: str,
    context: ContentContext,
    api_key_id: int | None,
    received_at: datetime | None = None,
    classified: VideoClassification | None = None,
) -> dict[str, Any]:
    """Decide, record the check (once per content id) and run the actions; the response body.

    The same for the synchronous request and the job, so both give the same answer.
    With ``classified`` (the frames' classifier scores) the verdict gets the highest
    score per category, ``classifications`` lists the frames over the threshold (at
    most 50, the highest-scoring, in time order) and ``classification_summary`` the rest.
    """
    if classified is not None:
        checked = with_classification(checked, classified)
    body = checked.to_dict()
    common = finish_check(
        checked.verdict,
        body,
        sinks,
        content_id=content_id,
        context=context,
        api_key_id=api_key_id,
        received_at=received_at,
        once=True,
    )
    return {
        **common,
        "kind": "video",
        "classifications": classified.answer_frames() if classified else [],
        "classified_frames": len(classified.frames) if classified else 0,
        "classification_summary": classified.summary() if classified else None,
        "frame_matches": body["frame_matches"],
        "videos": body["videos"],
    }


def classify_payload(
    specs: Sequence[str],
    rule: TemporalRule,
    max_frames: int,
    expected_samples: int | None = None,
) -> dict[str, Any] | None:
    """How the job classifies: the server's classifier specs, the rule, the frame cap,
    and how many samples the header's duration promises (to spread the cap evenly).

    Kept in the job's payload so the worker classifies as the server that accepted
    the upload would have (None: no classifier configured, none run).
    """
    if not specs:
        return None
    return {
        "classifiers": list(specs),
        **rule.to_dict(),
        "max_frames": max_frames,
        "expected_samples": expected_samples,
    }


def _load_spec(spec: str) -> Classifier:
    """A classifier by its ``SAFESTREAM_CLASSIFIERS`` spec: a bundled name or ``card:PATH``."""
    from safestream.classify import load_classifier

    if spec.startswith("card:"):
        return load_classifier(card=Path(spec.removeprefix("card:")))
    return load_classifier(spec)


def context_payload(context: ContentContext) -> dict[str, Any]:
    """The context as the job payload keeps it (times as ISO 8601 with their zone)."""
    return context.to_dict()


def context_from_payload(raw: Mapping[str, Any]) -> ContentContext:
    """Inverse of :func:`context_payload`."""
    ts = raw.get("client_timestamp")
    return ContentContext(
        account_id=raw.get("account_id"),
        username=raw.get("username"),
        profile_url=raw.get("profile_url"),
        ip_address=raw.get("ip_address"),
        source_port=raw.get("source_port"),
        client_timestamp=datetime.fromisoformat(ts) if ts else None,
        surface=raw.get("surface"),
    )


class VideoCheckHandler:
    """Runs video checks in the worker; the engine is built at the first job."""

    kind: str = JOB_KIND

    def __init__(self, store: Store, sinks: CheckSinks, options: EngineOptions) -> None:
        self.store = store
        self.sinks = sinks
        self.options = options
        self._engine: Engine | None = None
        #: Classifiers by spec, loaded at the first job that needs them.
        self._classifiers: dict[str, Classifier] = {}

    @classmethod
    def from_env(cls, store: Store, environ: Mapping[str, str] | None = None) -> VideoCheckHandler:
        """With the server's policy (``SAFESTREAM_POLICY_FILE``) and webhook configuration."""
        env = os.environ if environ is None else environ
        policy_file = env.get(ENV_POLICY_FILE, "").strip()
        policy = Policy.load(Path(policy_file)) if policy_file else DEFAULT_POLICY
        actions = ActionRunner(
            ActionEnv(
                reviews=ReviewRepository(store),
                jobs=JobRepository(store),
                webhook=WebhookConfig.from_env(environ),
            )
        )
        actions.check_config(policy.action_names())
        return cls(store, CheckSinks(CheckRepository(store), policy, actions), EngineOptions())

    def engine(self) -> Engine:
        """The engine, built once and brought up to date with the banks before each job."""
        if self._engine is None:
            self._engine = Engine.open(self.store, self.options)
        else:
            self._engine.refresh()
        return self._engine

    def classifiers(self, specs: Sequence[str]) -> list[Classifier]:
        """The classifiers a job's payload names, each loaded once per worker."""
        for spec in specs:
            if spec not in self._classifiers:
                self._classifiers[spec] = _load_spec(spec)
        return [self._classifiers[spec] for spec in specs]

    def run(self, job: Job, ctx: JobContext) -> dict[str, Any] | None:
        """Hash, check, record, act; the result is the body a short video would have got."""
        p = job.payload
        path = Path(str(p["path"]))
        content_id = str(p["content_id"])
        if not path.is_file():
            # An attempt that finished but died before completing the job deleted it.
            try:
                record = self.sinks.checks.get(content_id)
            except NotFoundError:
                raise PermanentJobError(
                    f"the uploaded video {path.name} is gone (was the upload folder "
                    f"cleaned?); send the video again"
                ) from None
            return {"content_id": content_id, "kind": "video", "record": record}
        ctx.check()
        sample_fps = float(p.get("sample_fps", 1.0))
        max_frame_pixels = int(p.get("max_frame_pixels") or DEFAULT_MAX_FRAME_PIXELS)
        classify = p.get("classify")
        scorer: FrameScorer | None = None
        if classify:
            # A model that will not load is not the video's fault: it fails the attempt
            # (retried), not PermanentJobError as a bad video does.
            models = self.classifiers([str(s) for s in classify["classifiers"]])
            expected = classify.get("expected_samples")
            scorer = FrameScorer(
                models,
                rule=TemporalRule(
                    window=int(classify["window"]),
                    min_flagged=int(classify["min_flagged"]),
                    score_threshold=float(classify["score_threshold"]),
                ),
                max_frames=int(classify["max_frames"]),
                expected_samples=int(expected) if expected is not None else None,
            )
            ctx.check()
        classified: VideoClassification | None = None
        try:
            # One decode: each sampled frame is hashed and, with classifiers, scored.
            hashes = hash_video(
                path,
                sample_fps=sample_fps,
                max_frame_pixels=max_frame_pixels,
                name="the uploaded video",
                on_sample=scorer,
                on_extra=scorer.extra if scorer is not None else None,
            )
            if scorer is not None:
                classified = scorer.result(hashes.frames_sampled)
        except VideoError as exc:
            path.unlink(missing_ok=True)
            raise PermanentJobError(str(exc)) from None
        ctx.check()
        checked = check_video(self.engine(), hashes, context_from_payload(p["context"]))
        received = p.get("received_at")
        body = finish_video_check(
            checked,
            self.sinks,
            content_id=content_id,
            context=context_from_payload(p["context"]),
            api_key_id=p.get("api_key_id"),
            received_at=datetime.fromisoformat(received) if received else None,
            classified=classified,
        )
        with contextlib.suppress(OSError):
            path.unlink()
        log.info(
            "video check done",
            extra={
                "job_id": job.id,
                "outcome": body["outcome"],
                "frames": len(hashes.frames),
                "classified_frames": body["classified_frames"],
            },
        )
        return body
