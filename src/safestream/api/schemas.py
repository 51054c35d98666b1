"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Surface = Literal["upload", "chat", "profile", "live", "message", "other"]


class Strict(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class MatchOut(BaseModel):
    """A match of the content against a bank entry."""

    bank: str
    bank_id: int
    entry_id: int
    signal_type: str
    distance_bits: int
    threshold_bits: int
    is_allow_list: bool
    variant: str
    external_id: str | None
    source: str | None
    labels: list[str]


class ActionResultOut(BaseModel):
    """What one action did: ``done``, ``queued`` (a job), ``skipped`` or ``failed``."""

    action: str
    status: Literal["done", "queued", "skipped", "failed"]
    detail: dict[str, Any] = Field(
        default_factory=dict, description="e.g. review_id, match_count, job_id, delivery_id"
    )


class CheckOut(BaseModel):
    """The result of ``POST /v1/check``."""

    content_id: str
    verdict: Literal["allow", "review", "block"]
    outcome: Literal["match", "no_match", "suppressed"]
    actions: list[str]
    matches: list[MatchOut]
    suppressed: list[MatchOut]
    reasons: list[str]
    signals: dict[str, Any]
    action_results: list[ActionResultOut] = Field(default_factory=list)
    #: Category -> score; None means no configured classifier assesses it.
    scores: dict[str, float | None] | None = None
    #: Per-model results (labels, detections with boxes, flagged categories).
    classifications: list[dict[str, Any]] = Field(default_factory=list)
    nondisclosure: bool = Field(
        default=False,
        description="an open law-enforcement request under a non-disclosure order names "
        "this user: do not tell them why the content was blocked or reviewed",
    )


class HashIn(Strict):
    """One hash to look up."""

    signal_type: str = Field(examples=["pdq"], max_length=32)
    value: str = Field(max_length=256)


class LookupIn(Strict):
    """Hashes to look up in every enabled bank."""

    hashes: list[HashIn] = Field(min_length=1)
    radius: int | None = Field(
        default=None, ge=0, le=256, description="PDQ: override the bank thresholds"
    )


class LookupResult(BaseModel):
    """Matches of one looked-up hash."""

    signal_type: str
    value: str
    matches: list[MatchOut]


class LookupOut(BaseModel):
    """The result of ``POST /v1/lookup``, in the order of the request."""

    results: list[LookupResult]


class BankIn(Strict):
    """A bank to create."""

    name: str = Field(max_length=100, examples=["ncmec-pdq"])
    description: str = Field(default="", max_length=10_000)
    source: str = Field(default="internal", max_length=200)
    is_allow_list: bool = False
    pdq_threshold: int = Field(default=31, ge=0, le=128)
    enabled: bool = True


class BankPatch(Strict):
    """Changes to a bank's settings."""

    description: str | None = Field(default=None, max_length=10_000)
    source: str | None = Field(default=None, max_length=200)
    is_allow_list: bool | None = None
    pdq_threshold: int | None = Field(default=None, ge=0, le=128)
    enabled: bool | None = None


class BankOut(BaseModel):
    """A bank."""

    id: int
    name: str
    description: str
    source: str
    enabled: bool
    is_allow_list: bool
    pdq_threshold: int
    version: int
    created_at: datetime
    updated_at: datetime
    entry_count: int


class EntryIn(Strict):
    """An entry to add to a bank."""

    signal_type: str = Field(max_length=32, examples=["pdq"])
    value: str = Field(max_length=256)
    external_id: str | None = Field(default=None, max_length=200)
    source: str | None = Field(default=None, max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=50)


class EntriesIn(Strict):
    """Entries to add."""

    entries: list[EntryIn] = Field(min_length=1, max_length=10_000)


class EntriesAdded(BaseModel):
    """Ids of added entries and how many were already present."""

    added_ids: list[int]
    duplicates: int


class EntriesRemoveIn(Strict):
    """Entries to remove, by id or by value."""

    entry_ids: list[int] = Field(default_factory=list, max_length=10_000)
    hashes: list[HashIn] = Field(default_factory=list, max_length=10_000)


class EntryOut(BaseModel):
    """A bank entry."""

    id: int
    bank: str
    signal_type: str
    value: str
    source: str | None
    external_id: str | None
    labels: list[str]
    added_at: datetime


class EntriesPage(BaseModel):
    """A page of entries; pass ``next_after_id`` as ``after_id`` for the next."""

    entries: list[EntryOut]
    next_after_id: int | None


class KeyIn(Strict):
    """A key to create."""

    role: Literal["admin", "integrator", "curator", "reviewer", "le_liaison", "auditor"]
    name: str = Field(default="", max_length=200)


class KeyOut(BaseModel):
    """An API key (never its secret)."""

    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    """A new key: ``key`` is shown this once and never again."""

    key: str


class ValidationItem(BaseModel):
    """One field FastAPI could not validate."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """FastAPI's validation error body (a 422)."""

    detail: list[ValidationItem]


class Problem(BaseModel):
    """An error response."""

    detail: str
    kind: str | None = None


class JobOut(BaseModel):
    """A background job (a bank import, a batch scan, a webhook delivery)."""

    id: int
    kind: str
    status: Literal["queued", "running", "done", "dead"]
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_expires_at: datetime | None
    last_error: str | None = Field(description="why the last attempt failed, if it did")
    created_at: datetime
    finished_at: datetime | None
    result: dict[str, Any] | None = Field(
        description="import counts or scan summary when done; progress while running"
    )


class JobsPage(BaseModel):
    """Jobs, newest first; pass ``next_before_id`` as ``before_id`` for the next page."""

    jobs: list[JobOut]
    next_before_id: int | None


class JobAccepted(BaseModel):
    """A job was queued (or an identical one already was): follow ``location``."""

    job: JobOut
    created: bool = Field(description="false when an identical job already existed")
    location: str


class ScanIn(Strict):
    """A folder (or file) on the server to scan, inside ``SAFESTREAM_SCAN_ROOTS``."""

    path: str = Field(max_length=4096, examples=["/srv/uploads/2026-11"])
    dihedral: bool = False
    mode: Literal["exact", "fast"] = "exact"


class ScanStatusOut(BaseModel):
    """A batch scan: its job, and files scanned so far by outcome."""

    job: JobOut
    path: str
    files_done: int
    outcomes: dict[str, int]


class ScanResultOut(BaseModel):
    """The result of one scanned file (as a line of ``safestream scan``)."""

    model_config = ConfigDict(extra="allow")

    id: int
    path: str
    outcome: Literal["match", "no_match", "suppressed", "error"]
    scanned_at: datetime


class ScanResultsPage(BaseModel):
    """A page of results; pass ``next_after_id`` as ``after_id`` for the next."""

    results: list[ScanResultOut]
    next_after_id: int | None


class FrameMatchOut(MatchOut):
    """A sampled frame of a checked video that matched an image entry of a bank."""

    timestamp_s: float = Field(description="seconds from the video's first frame")
    until_s: float = Field(description="the frame's hash stands until here (next sample)")
    frame_number: int
    stream_index: int = Field(0, description="the file's video stream the frame is in")
    edit_list_ignored: bool = Field(
        False, description="a frame the file's edit list hides from players"
    )
    scene_change: bool = Field(
        False, description="a scene change between two samples (a frame unlike the last)"
    )


class BankVideoOut(BaseModel):
    """A banked video that the checked video matched (or partly covered)."""

    bank: str
    video_sha256: str
    external_id: str | None
    labels: list[str]
    query_match_percent: float
    bank_coverage_percent: float
    first_match_s: float
    last_match_s: float
    exact_file: bool
    is_allow_list: bool
    matched: bool
    kind: Literal["exact_file", "video", "clip", "partial"]
    stream_index: int = Field(0, description="the checked file's video stream that matched")
    edit_list_ignored: bool = Field(
        False, description="matched in frames the file's edit list hides from players"
    )


class FrameClassificationOut(BaseModel):
    """A sampled frame of a checked video with a category at or over the score threshold."""

    frame_number: int
    timestamp_s: float = Field(description="seconds from the video's first frame")
    scores: dict[str, float] = Field(description="category -> merged score (assessed ones)")
    over_threshold: list[str] = Field(description="categories at or over the threshold")
    stream_index: int | None = Field(
        default=None,
        description="an extra frame from another video stream than the one players pick",
    )
    scene_change: bool = Field(
        default=False, description="an extra frame taken at a scene change between samples"
    )


class VideoRuleOut(BaseModel):
    """The temporal rule: ``min_flagged`` of ``window`` consecutive frames over the threshold."""

    window: int
    min_flagged: int
    score_threshold: float


class VideoClassificationOut(BaseModel):
    """What the classifiers made of a video's sampled frames."""

    models: list[str]
    classified_frames: int
    extra_classified_frames: int = Field(
        default=0,
        description="frames classified besides the samples: scene changes between samples "
        "and the other video streams' frames; they count towards max_scores, not the rule",
    )
    sampled_frames: int = Field(description="frames sampled; all or an even subset classified")
    frames_over_threshold: int
    max_scores: dict[str, float | None] = Field(
        description="category -> highest frame score; None: no model assesses it"
    )
    rule: VideoRuleOut
    flagged: bool = Field(description="the temporal rule holds for some category")
    flagged_categories: list[str]
    flagged_spans_s: dict[str, list[float]] = Field(
        description="category -> [start, end] seconds of the first window that flagged it"
    )


class VideoCheckOut(CheckOut):
    """``POST /v1/check`` for a short video: the verdict plus where in the video it matched.

    ``signals`` holds ``kind: video``, the file's MD5/SHA-1/SHA-256, duration, size and
    the sampled frames (``frame_number``, ``quality``, ``pdq``, ``timestamp_s``). With
    classifiers configured, ``scores`` is each category's highest score over the
    classified frames.
    """

    kind: Literal["video"]
    classifications: list[FrameClassificationOut] = Field(  # type: ignore[assignment]
        default_factory=list,
        description="classified frames over the score threshold, by time (at most 50: "
        "the highest-scoring)",
    )
    classified_frames: int = Field(default=0, description="frames the classifiers scored")
    classification_summary: VideoClassificationOut | None = Field(
        default=None, description="None when no classifier is configured"
    )
    frame_matches: list[FrameMatchOut] = Field(
        default_factory=list, description="frames that matched image entries, by time"
    )
    videos: list[BankVideoOut] = Field(
        default_factory=list, description="banked videos matched (vPDQ, clip or exact file)"
    )


class VideoCheckAccepted(JobAccepted):
    """``POST /v1/check`` for a long video: a ``video_check`` job; poll ``location``.

    When the job is done its ``result`` is the :class:`VideoCheckOut` body.
    """

    content_id: str
    duration_s: float | None = Field(description="from the container header; None if unknown")
