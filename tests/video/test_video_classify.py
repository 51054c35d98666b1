"""Classifiers on a video's sampled frames: the temporal rule, the cap, the API and the job.

The bundled default model (opennsfw) runs on benign synthetic video only; a small test
double scoring "redness" exercises the temporal rule, which benign video never reaches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api_support import auth
from safestream.api.app import create_app
from safestream.api.settings import ServiceSettings
from safestream.classify import Classifier, Detection, load_classifier
from safestream.classify.video import (
    TemporalRule,
    VideoClassification,
    classify_video,
    even_picks,
    rule_window,
)
from safestream.cli import cli
from safestream.engine.policy import Policy
from safestream.errors import ConfigError, InputError
from safestream.jobs.base import JobContext
from safestream.jobs.video_check import VideoCheckHandler
from safestream.signals.video import (
    CorruptVideoError,
    NotAVideoError,
    VideoTooLargeError,
    VideoTooLongError,
    hash_video,
)
from safestream.store.db import Store
from safestream.store.jobs import JobRepository
from safestream.store.models import CheckRow
from safestream.store.service import KeyRepository
from video_support import encode, known_frame, other_frame, shots
from webhook_support import store_url

FPS = 10
RGB = npt.NDArray[np.uint8]
RED = np.full((240, 320, 3), (230, 20, 20), dtype=np.uint8)
BLUE = np.full((240, 320, 3), (20, 20, 230), dtype=np.uint8)


class Redness(Classifier):
    """Test double for the rule tests: the share of strongly red pixels, as explicit_nudity."""

    name = "redness"
    labels = ("red",)
    input_size = (64, 64)
    category_map = {"red": "explicit_nudity"}  # noqa: RUF012
    thresholds = {"explicit_nudity": 0.8}  # noqa: RUF012

    def predict_batch(
        self, images: Sequence[RGB]
    ) -> list[tuple[dict[str, float], tuple[Detection, ...]]]:
        return [
            ({"red": float(((im[..., 0] > 180) & (im[..., 2] < 80)).mean())}, ()) for im in images
        ]


@pytest.fixture(scope="module")
def opennsfw() -> Classifier:
    return load_classifier("opennsfw")


def benign_pictures(n: int, seed: int) -> list[RGB]:
    return [known_frame(seed + i) if i % 2 else other_frame(seed + i) for i in range(n)]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("classify-videos")
    out = {
        "benign5": d / "benign5.mp4",
        "benign10": d / "benign10.mkv",
        "truncated": d / "truncated.mp4",
    }
    encode(out["benign5"], shots(benign_pictures(5, 10), 1, FPS), fps=FPS)
    encode(out["benign10"], shots(benign_pictures(10, 40), 1, FPS), fps=FPS)
    data = out["benign5"].read_bytes()
    out["truncated"].write_bytes(data[: len(data) // 2])  # mp4: the index is at the end
    return out


def coloured(tmp: Path, name: str, seconds: str) -> Path:
    """One second per letter: R a red shot, B a blue one."""
    path = tmp / name
    encode(path, shots([RED if c == "R" else BLUE for c in seconds], 1, FPS), fps=FPS)
    return path


# ---------------------------------------------------------------------------
# The rule and the cap, pure


def test_rule_window_needs_k_of_n_consecutive() -> None:
    t, f = True, False
    assert rule_window([t, t, t], 5, 3) == (0, 2)
    assert rule_window([f, t, f, t, f, t, f], 5, 3) == (1, 5)
    assert rule_window([t, f, f, t, f, f, t], 5, 3) is None  # 3 hits, never 3 in any 5
    assert rule_window([f] * 8 + [t, t, f, t], 5, 3) == (7, 11)
    # Fewer frames than the window: K of them, at most all, at least one.
    assert rule_window([t, t], 5, 3) == (0, 1)
    assert rule_window([f, t], 5, 3) is None
    assert rule_window([t], 5, 3) == (0, 0)
    assert rule_window([], 5, 3) is None
    assert rule_window([f, f, t], 5, 1) == (0, 2)


def test_rule_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError):
        TemporalRule(window=3, min_flagged=4)
    with pytest.raises(InputError):
        TemporalRule(score_threshold=1.5)
    monkeypatch.setenv("SAFESTREAM_VIDEO_CLASSIFY_WINDOW", "8")
    monkeypatch.setenv("SAFESTREAM_VIDEO_CLASSIFY_MIN_FLAGGED", "2")
    monkeypatch.setenv("SAFESTREAM_VIDEO_SCORE_THRESHOLD", "0.6")
    monkeypatch.setenv("SAFESTREAM_VIDEO_CLASSIFY_MAX_FRAMES", "100")
    s = ServiceSettings.from_env()
    assert (s.video_classify_window, s.video_classify_min_flagged) == (8, 2)
    assert (s.video_score_threshold, s.video_classify_max_frames) == (0.6, 100)
    monkeypatch.setenv("SAFESTREAM_VIDEO_CLASSIFY_MIN_FLAGGED", "9")
    with pytest.raises(ConfigError, match="MIN_FLAGGED"):
        ServiceSettings.from_env()
    monkeypatch.setenv("SAFESTREAM_VIDEO_CLASSIFY_MIN_FLAGGED", "2")
    monkeypatch.setenv("SAFESTREAM_VIDEO_SCORE_THRESHOLD", "2")
    with pytest.raises(ConfigError, match="THRESHOLD"):
        ServiceSettings.from_env()


def test_even_picks() -> None:
    assert even_picks(5, 10) == frozenset(range(5))
    picks = sorted(even_picks(1000, 600))
    assert len(picks) == 600 and picks[0] == 0 and picks[-1] == 999
    assert max(np.diff(picks)) <= 2
    assert sorted(even_picks(10, 4)) == [0, 3, 6, 9]
    assert even_picks(10, 1) == frozenset({0})


# ---------------------------------------------------------------------------
# The temporal rule on decoded video (test double scorer)


@pytest.mark.parametrize(
    ("seconds", "flagged", "over_s", "span"),
    [
        ("BRBRBRBB", True, [1.0, 3.0, 5.0], (1.0, 5.0)),
        ("BRBRBBRB", False, [1.0, 3.0, 6.0], None),
        ("RR", True, [0.0, 1.0], (0.0, 1.0)),  # shorter than the window: 2 of 2
        ("BR", False, [1.0], None),
        ("BBBB", False, [], None),
    ],
)
def test_temporal_rule_on_video(
    tmp_path: Path,
    seconds: str,
    flagged: bool,
    over_s: list[float],
    span: tuple[float, float] | None,
) -> None:
    path = coloured(tmp_path, "c.mp4", seconds)
    result = classify_video(path, [Redness()])
    assert len(result.frames) == result.frames_sampled == len(seconds)
    assert [f.timestamp_s for f in result.frames_over()] == pytest.approx(over_s, abs=1e-3)
    assert result.flagged is flagged
    assert result.flagged_categories == (("explicit_nudity",) if flagged else ())
    if span is not None:
        assert result.flagged_spans_s["explicit_nudity"] == pytest.approx(span, abs=1e-3)
        assert "3 of 5 consecutive" in result.reasons()[0]
    else:
        assert result.reasons() == []
    max_red = result.max_scores["explicit_nudity"]
    assert max_red is not None and (max_red > 0.9) is ("R" in seconds)
    assert result.max_scores["csam"] is None  # not assessed by the model
    summary = result.summary()
    assert summary["frames_over_threshold"] == len(over_s)
    assert summary["classified_frames"] == len(seconds)


def test_threshold_and_window_are_the_callers(tmp_path: Path) -> None:
    path = coloured(tmp_path, "c.mp4", "BRBRBBRB")
    loose = classify_video(path, [Redness()], rule=TemporalRule(window=6, min_flagged=3))
    assert loose.flagged and loose.flagged_spans_s["explicit_nudity"] == pytest.approx((1, 6))
    # Threshold 0: every assessed frame counts, so the first three frames flag.
    everything = classify_video(path, [Redness()], rule=TemporalRule(score_threshold=0.0))
    assert len(everything.frames_over()) == 8
    assert everything.flagged_spans_s["explicit_nudity"] == pytest.approx((0, 2))


# ---------------------------------------------------------------------------
# The bundled model on benign video


def test_frames_are_the_hashed_samples_and_benign_is_clean(
    media: dict[str, Path], opennsfw: Classifier
) -> None:
    result = classify_video(media["benign5"], [opennsfw])
    every = hash_video(media["benign5"], fold_bits=None)
    assert len(result.frames) == result.frames_sampled == every.frames_sampled == 5
    assert [(f.frame_number, round(f.timestamp_s, 3)) for f in result.frames] == [
        (f.frame_number, round(f.timestamp_s, 3)) for f in every.frames
    ]
    assert [f.timestamp_s for f in result.frames] == pytest.approx([0, 1, 2, 3, 4], abs=1e-3)
    assert result.models == ("opennsfw",)
    top = result.max_scores["explicit_nudity"]
    assert top is not None and 0.0 <= top < 0.8
    assert top == max(f.scores["explicit_nudity"] or 0.0 for f in result.frames)
    assert result.frames_over() == [] and not result.flagged


def test_frame_cap_thins_evenly(media: dict[str, Path], opennsfw: Classifier) -> None:
    known = classify_video(media["benign10"], [opennsfw], max_frames=4, expected_samples=10)
    assert known.frames_sampled == 10
    assert [round(f.timestamp_s) for f in known.frames] == [0, 3, 6, 9]
    # Without the count: every other frame dropped whenever the cap is passed.
    blind = classify_video(media["benign10"], [opennsfw], max_frames=4)
    times = [round(f.timestamp_s) for f in blind.frames]
    assert blind.frames_sampled == 10 and 1 <= len(times) <= 4
    assert times == [0, 4, 8]
    assert blind.summary()["classified_frames"] == 3 and blind.summary()["sampled_frames"] == 10


def test_bad_videos_raise_the_hashing_errors(
    media: dict[str, Path], opennsfw: Classifier, tmp_path: Path
) -> None:
    with pytest.raises(CorruptVideoError):
        classify_video(media["truncated"].read_bytes(), [opennsfw])
    with pytest.raises(NotAVideoError):
        classify_video(b"neither an image nor a video\n" * 40, [opennsfw])
    with pytest.raises(VideoTooLargeError):
        classify_video(media["benign5"], [opennsfw], max_frame_pixels=320 * 240 - 1)
    with pytest.raises(VideoTooLongError):
        classify_video(media["benign5"], [opennsfw], max_duration_s=2.5)
    with pytest.raises(InputError):
        classify_video(media["benign5"], [])


# ---------------------------------------------------------------------------
# POST /v1/check and the video_check job


def check_count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(CheckRow)) or 0)


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "uploads"
    monkeypatch.setenv("SAFESTREAM_UPLOAD_DIR", str(d))
    return d


def make_client(store: Store, policy: Policy | None = None, **settings: object) -> TestClient:
    base: dict[str, object] = {
        "max_upload_bytes": 8 * 1024 * 1024,
        "refresh_interval_s": 0.05,
        "classifiers": ("opennsfw",),
        "video_sync_max_s": 6.0,
    }
    merged = ServiceSettings(**{**base, **settings})  # type: ignore[arg-type]
    return TestClient(create_app(store, settings=merged, policy=policy))


@pytest.fixture
def integrator(store: Store) -> dict[str, str]:
    return auth(KeyRepository(store).create("integrator", "test")[0])


@pytest.fixture
def client(store: Store, upload_dir: Path) -> Iterator[TestClient]:
    with make_client(store) as c:
        yield c


def check_upload(client: TestClient, headers: dict[str, str], path: Path) -> Any:
    """POST a video file to /v1/check."""
    return client.post("/v1/check", files={"file": (path.name, path.read_bytes())}, headers=headers)


def assert_benign_classified(body: dict[str, object], sampled: int) -> None:
    scores = body["scores"]
    assert isinstance(scores, dict)
    assert isinstance(scores["explicit_nudity"], float) and scores["explicit_nudity"] < 0.8
    assert scores["csam"] is None and scores["minor_likely"] is None  # not assessed
    assert body["classified_frames"] == sampled
    summary = body["classification_summary"]
    assert isinstance(summary, dict)
    assert summary["models"] == ["opennsfw"] and summary["sampled_frames"] == sampled
    assert summary["classified_frames"] == sampled and summary["frames_over_threshold"] == 0
    assert summary["flagged"] is False and summary["flagged_categories"] == []
    assert summary["max_scores"]["explicit_nudity"] == round(scores["explicit_nudity"], 6)
    assert summary["rule"] == {"window": 5, "min_flagged": 3, "score_threshold": 0.8}
    assert body["classifications"] == []
    assert body["verdict"] == "allow" and body["actions"] == []
    assert not any("classifier" in str(r) for r in body["reasons"])  # type: ignore[attr-defined]


def test_short_video_is_classified_in_the_request(
    client: TestClient, integrator: dict[str, str], media: dict[str, Path], store: Store
) -> None:
    r = check_upload(client, integrator, media["benign5"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "video" and body["signals"]["frames_sampled"] == 5
    assert_benign_classified(body, 5)
    record = client.get(f"/v1/checks/{body['content_id']}", headers=integrator).json()
    assert record["scores"]["explicit_nudity"] == pytest.approx(body["scores"]["explicit_nudity"])
    assert check_count(store) == 1


def test_policy_score_rules_apply_to_video_scores(
    store: Store, integrator: dict[str, str], media: dict[str, Path], upload_dir: Path
) -> None:
    """Any assessed score satisfies a 0.0 minimum: the video's max score reaches the policy."""
    policy = Policy.from_dict(
        {
            "rule": [
                {
                    "name": "any nudity score",
                    "min_scores": {"explicit_nudity": 0.0},
                    "verdict": "review",
                    "actions": ["enqueue_review"],
                }
            ]
        }
    )
    with make_client(store, policy) as c:
        body = check_upload(c, integrator, media["benign5"]).json()
    assert body["verdict"] == "review" and body["actions"] == ["enqueue_review"]
    assert "policy rule 'any nudity score'" in body["reasons"]


def test_without_classifiers_nothing_is_classified(
    store: Store, integrator: dict[str, str], media: dict[str, Path], upload_dir: Path
) -> None:
    with make_client(store, classifiers=()) as c:
        body = check_upload(c, integrator, media["benign5"]).json()
    assert body["scores"] is None and body["classifications"] == []
    assert body["classified_frames"] == 0 and body["classification_summary"] is None


def test_long_video_job_result_has_scores(
    client: TestClient,
    integrator: dict[str, str],
    media: dict[str, Path],
    store: Store,
    upload_dir: Path,
) -> None:
    r = check_upload(client, integrator, media["benign10"])
    assert r.status_code == 202, r.text
    accepted = r.json()
    ran = CliRunner().invoke(cli, ["--database-url", store_url(store), "worker", "--once"])
    assert ran.exit_code == 0, ran.output
    job = client.get(accepted["location"], headers=integrator).json()
    assert job["status"] == "done", job
    result = job["result"]
    assert result["content_id"] == accepted["content_id"]
    assert result["signals"]["frames_sampled"] == 10
    assert_benign_classified(result, 10)
    record = client.get(f"/v1/checks/{accepted['content_id']}", headers=integrator).json()
    assert record["scores"]["explicit_nudity"] == pytest.approx(result["scores"]["explicit_nudity"])
    assert check_count(store) == 1


def test_job_retried_after_a_crash_records_once(
    client: TestClient,
    integrator: dict[str, str],
    media: dict[str, Path],
    store: Store,
    upload_dir: Path,
) -> None:
    data = media["benign10"].read_bytes()
    r = client.post("/v1/check", files={"file": ("v.mkv", data)}, headers=integrator)
    assert r.status_code == 202, r.text
    jobs = JobRepository(store)
    job = jobs.get(r.json()["job"]["id"])
    assert job.payload["classify"]["classifiers"] == ["opennsfw"]
    handler = VideoCheckHandler.from_env(store, {})
    first = handler.run(job, JobContext(job, jobs))
    assert first is not None and first["classified_frames"] == 10
    # The attempt died after recording, before deleting the upload: run it again.
    path = Path(job.payload["path"])
    path.write_bytes(data)
    second = handler.run(job, JobContext(job, jobs))
    assert second is not None and second["scores"] == first["scores"]
    assert second["classification_summary"] == first["classification_summary"]
    assert check_count(store) == 1
    assert not path.exists()


def test_corrupt_video_is_still_422(
    client: TestClient, integrator: dict[str, str], media: dict[str, Path], store: Store
) -> None:
    r = check_upload(client, integrator, media["truncated"])
    assert r.status_code == 422, r.text
    assert r.json()["kind"] == "corrupt_video"
    assert check_count(store) == 0


def test_openapi_describes_video_classification(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    video = schemas["VideoCheckOut"]["properties"]
    assert {"classifications", "classified_frames", "classification_summary"} <= set(video)
    assert "FrameClassificationOut" in str(video["classifications"])
    assert {"max_scores", "flagged", "rule"} <= set(schemas["VideoClassificationOut"]["properties"])
    assert "timestamp_s" in schemas["FrameClassificationOut"]["properties"]


def test_answer_frames_are_bounded(tmp_path: Path) -> None:
    path = coloured(tmp_path, "c.mp4", "RRRRBR")
    result: VideoClassification = classify_video(path, [Redness()])
    assert len(result.answer_frames()) == 5
    two = result.answer_frames(limit=2)
    assert len(two) == 2 and two[0]["timestamp_s"] < two[1]["timestamp_s"]
    assert all(f["over_threshold"] == ["explicit_nudity"] for f in two)


def test_one_decode_hashes_and_classifies_alike(tmp_path: Path) -> None:
    """hash_video(on_sample=FrameScorer) gives what classify_video's own decode gives."""
    from safestream.classify.video import FrameScorer

    path = coloured(tmp_path, "rbr.mp4", "BRRRBB")
    seen: list[tuple[int, int, float]] = []
    scorer = FrameScorer([Redness()], rule=TemporalRule(window=3, min_flagged=2))

    def both(index: int, number: int, t: float, frame: object) -> None:
        seen.append((index, number, round(t, 3)))
        scorer(index, number, t, frame)

    hashes = hash_video(path, on_sample=both, fold_bits=None)
    assert [i for i, _, _ in seen] == list(range(hashes.frames_sampled))
    assert [(n, t) for _, n, t in seen] == [
        (f.frame_number, round(f.timestamp_s, 3)) for f in hashes.frames
    ]
    one_pass = scorer.result(hashes.frames_sampled)
    two_pass = classify_video(path, [Redness()], rule=TemporalRule(window=3, min_flagged=2))
    assert one_pass == two_pass
    assert one_pass.flagged and one_pass.flagged_spans_s["explicit_nudity"] == (0.0, 2.0)


def test_more_samples_than_the_header_promised_are_still_classified(tmp_path: Path) -> None:
    """expected_samples is an estimate: samples past it are thinned, never ignored."""
    from safestream.classify.video import FrameScorer

    path = coloured(tmp_path, "long.mp4", "BBBBBBBBBR")  # red only in the last second
    scorer = FrameScorer(
        [Redness()], rule=TemporalRule(window=1, min_flagged=1), max_frames=4, expected_samples=5
    )
    hashes = hash_video(path, on_sample=scorer)
    result = scorer.result(hashes.frames_sampled)
    assert hashes.frames_sampled == 10
    times = [round(f.timestamp_s) for f in result.frames]
    assert len(times) <= 4 and times[-1] >= 8, times  # the tail is covered
    assert times == sorted(times)


# ---------------------------------------------------------------------------
# Extra frames: what the regular samples miss


def test_a_second_stream_and_a_flash_between_samples_are_classified(tmp_path: Path) -> None:
    """Content in a stream players do not pick, or shown between samples, still scores."""
    from safestream.classify.video import FrameScorer
    from video_support import encode_tracks

    # Stream 0 (default): blue, with a red flash of 0.3 s between the samples at 1 and 2 s.
    flash = [BLUE] * 14 + [RED] * 3 + [BLUE] * 13
    tracks = encode_tracks(tmp_path / "two.mp4", flash, [RED] * 30, fps=FPS, default=0)
    scorer = FrameScorer([Redness()])
    hashes = hash_video(tracks, on_sample=scorer, on_extra=scorer.extra)
    result = scorer.result(hashes.frames_sampled)
    # The regular samples (0, 1, 2 s of stream 0) are all blue: the rule never holds.
    assert [round(f.timestamp_s) for f in result.frames] == [0, 1, 2]
    assert not any(f.over for f in result.frames) and not result.flagged
    # ... but the flash (a scene change) and the hidden red stream are classified.
    scene = [f for f in result.extra_frames if f.scene_change]
    assert any(f.over and 1.3 <= f.timestamp_s <= 1.7 for f in scene), scene
    assert all(f.stream_index == hashes.stream_index for f in scene)
    other = [f for f in result.extra_frames if f.stream_index == 1]
    assert other and all(f.over == ("explicit_nudity",) for f in other)
    top = result.max_scores["explicit_nudity"]
    assert top is not None and top > 0.9  # what a policy's min_scores sees
    listed = result.answer_frames()
    assert any(f.get("stream_index") == 1 for f in listed)
    assert any(f.get("scene_change") for f in listed)
    assert result.summary()["extra_classified_frames"] == len(result.extra_frames)
    # Without on_extra (the sampled frames only) the same file scores blue.
    plain = FrameScorer([Redness()])
    hash_video(tracks, on_sample=plain)
    only = plain.result(3)
    assert only.extra_frames == () and (only.max_scores["explicit_nudity"] or 0) < 0.1


def test_extra_frames_are_capped_evenly(tmp_path: Path) -> None:
    from safestream.classify.video import FrameScorer

    # A cut every 0.5 s: at most two scene changes a second are taken, all extra.
    path = tmp_path / "cuts.mp4"
    encode(path, shots([RED if i % 2 else BLUE for i in range(20)], 0.5, FPS), fps=FPS)
    scorer = FrameScorer([Redness()], max_frames=20, max_extra_frames=3)
    hash_video(path, on_sample=scorer, on_extra=scorer.extra)
    assert scorer.extra_seen > 3
    kept = scorer.result(10).extra_frames
    assert 1 <= len(kept) <= 3
    times = [f.timestamp_s for f in kept]
    assert times == sorted(times) and times[-1] - times[0] >= 2.0  # spread, not the first 3


def test_a_checked_video_lists_extra_frames(
    store: Store, integrator: dict[str, str], upload_dir: Path, tmp_path: Path
) -> None:
    """Through POST /v1/check: a hidden second stream raises the video's score."""
    from video_support import encode_tracks

    tracks = encode_tracks(tmp_path / "hidden.mp4", [BLUE] * 30, [RED] * 30, fps=FPS, default=0)
    with make_client(store) as c:
        c.app.state.safestream.classifiers = [Redness()]  # type: ignore[attr-defined]
        r = check_upload(c, integrator, tracks)
    assert r.status_code == 200, r.text
    body = r.json()
    summary = body["classification_summary"]
    assert summary["extra_classified_frames"] >= 3
    assert body["scores"]["explicit_nudity"] > 0.9
    assert any(f.get("stream_index") == 1 for f in body["classifications"])


def test_the_video_job_classifies_extra_frames_too(
    store: Store, integrator: dict[str, str], upload_dir: Path, tmp_path: Path
) -> None:
    """A video long enough for a job: the hidden stream's frames reach the job's scores."""
    from video_support import encode_tracks

    tracks = encode_tracks(tmp_path / "long.mp4", [BLUE] * 90, [RED] * 90, fps=FPS, default=0)
    with make_client(store) as c:
        r = check_upload(c, integrator, tracks)
    assert r.status_code == 202, r.text  # 9 s x 2 streams: over the 6 s of a request
    jobs = JobRepository(store)
    job = jobs.get(r.json()["job"]["id"])
    handler = VideoCheckHandler.from_env(store, {})
    handler.classifiers = lambda _names: [Redness()]  # type: ignore[method-assign]
    result = handler.run(job, JobContext(job, jobs))
    assert result is not None
    summary = result["classification_summary"]
    assert summary["classified_frames"] == 9 and summary["extra_classified_frames"] >= 9
    assert summary["flagged"] is False  # the rule is about the regular samples (blue)
    assert result["scores"]["explicit_nudity"] > 0.9
    assert {f.get("stream_index") for f in result["classifications"]} == {1}
