"""Helpers for the case and report tests: check records of synthetic images.

Accounts, IPs and URLs are documentation values (203.0.113.0/24, 2001:db8::/32,
example.com); images are ``safestream.demo.synthetic_image``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import update

from api_support import auth
from safestream.auth import Role
from safestream.demo import synthetic_image
from safestream.reports.model import Contact, Reporter

if TYPE_CHECKING:
    from safestream.reports.service import ReportService
from safestream.signals.hashing import hash_bytes
from safestream.store.db import Store
from safestream.store.models import CheckRow
from safestream.store.service import CheckRepository, KeyRepository

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@cache
def hashes(seed: int) -> dict[str, Any]:
    """Hashes of a synthetic image."""
    buf = io.BytesIO()
    synthetic_image(seed, (256, 192)).save(buf, "PNG")
    return hash_bytes(buf.getvalue()).to_dict()


def record_check(
    store: Store,
    *,
    seed: int,
    account: str | None = "acct-1",
    outcome: str = "match",
    surface: str = "upload",
    at: datetime = T0,
    ip: str | None = "203.0.113.7",
    port: int | None = 51234,
    scores: dict[str, float | None] | None = None,
    bank: str = "known",
) -> str:
    """Record a check as the API would, received at ``at``; return its content id."""
    content_id = str(uuid.uuid4())
    matches = (
        [{"bank": bank, "signal_type": "pdq", "distance_bits": 0}] if outcome == "match" else []
    )
    CheckRepository(store).record(
        content_id=content_id,
        account_id=account,
        username=f"user-{account}" if account else None,
        profile_url=f"https://example.com/u/{account}" if account else None,
        ip_address=ip,
        source_port=port,
        client_timestamp=at - timedelta(seconds=1),
        surface=surface,
        outcome=outcome,
        signals=hashes(seed),
        matches=matches,
        reasons=[],
        scores=scores,
    )
    with store.session() as s:
        s.execute(update(CheckRow).where(CheckRow.content_id == content_id).values(received_at=at))
    return content_id


def record_live(
    store: Store,
    *,
    stream_id: str = "cam-1",
    account: str = "acct-live",
    started: datetime = T0,
    sample_times_s: tuple[float, ...] = (12.0, 13.0),
    at: datetime = T0 + timedelta(seconds=15),
) -> str:
    """A live detection written as the live monitor's ``open_case`` does; its content id."""
    from safestream.live.cases import LiveCaseWriter
    from safestream.live.ingest import StreamContext
    from safestream.live.monitor import ActionRequest

    ctx = StreamContext(
        stream_id,
        account_id=account,
        username=f"user-{account}",
        profile_url=f"https://example.com/u/{account}",
        ip_address="203.0.113.9",
        source_port=40123,
        started_at=started,
    )
    request = ActionRequest(
        action="open_case",
        verdict="flagged",
        context=ctx,
        source="synthetic:testsrc2",
        sample_times_s=sample_times_s,
        matches=(),
        frame_pdqs=tuple(hashes(int(t))["pdq"] for t in sample_times_s),
        frame_scores=tuple({"nudity": 0.99} for _ in sample_times_s),
        detected_at=at,
    )
    content_id = LiveCaseWriter(CheckRepository(store)).write(request).content_id
    with store.session() as s:
        s.execute(update(CheckRow).where(CheckRow.content_id == content_id).values(received_at=at))
    return content_id


# -- fixtures shared by tests/cases and tests/reports (imported by their conftest.py) --

#: A complete reporter (synthetic organisation and people).
REPORTER = Reporter(
    organisation="Example Platform",
    contact=Contact(name="Ada Example", email="trust@example.com", phone="+1 555 0100"),
    emergency_contact=Contact(name="On Call", phone="+1 555 0199"),
)
#: The same reporter as API JSON.
REPORTER_JSON: dict[str, Any] = REPORTER.model_dump(mode="json", exclude_none=True)


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the ``cases``/``reports`` commands on a fresh SQLite data dir."""
    from safestream.cli import cli
    from safestream.cli_cases import COMMANDS

    group = click.Group("safestream-test", params=cli.params, callback=cli.callback)
    for command in COMMANDS:
        group.add_command(command)
    monkeypatch.delenv("SAFESTREAM_DATABASE_URL", raising=False)
    monkeypatch.setenv("SAFESTREAM_EVIDENCE_DIR", str(tmp_path / "evidence"))
    monkeypatch.setenv("SAFESTREAM_REPORTER_ORG", "Example Platform")
    monkeypatch.setenv("SAFESTREAM_REPORTER_NAME", "Ada Example")
    monkeypatch.setenv("SAFESTREAM_REPORTER_EMAIL", "trust@example.com")
    monkeypatch.setenv("SAFESTREAM_REPORTER_EMERGENCY_NAME", "On Call")
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(group, ["--data-dir", str(tmp_path / "data"), *args])

    return run


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    """The API over the test's store."""
    from safestream.api.app import create_app
    from safestream.api.settings import ServiceSettings

    app = create_app(store, settings=ServiceSettings(refresh_interval_s=0.05))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def keys(store: Store) -> dict[Role, dict[str, str]]:
    """Auth headers of a fresh key for every role."""
    repo = KeyRepository(store)
    return {role: auth(repo.create(role.value, f"test {role.value}")[0]) for role in Role}


def confirmed_report(
    store: Store, files: int = 2, *, chat_excerpt: str | None = "hello"
) -> tuple[ReportService, int]:
    """A confirmed case of ``files`` chat detections with a stored report: (service, id)."""
    from safestream.cases.model import CaseConfig
    from safestream.cases.service import CaseService
    from safestream.reports.build import BuildOptions
    from safestream.reports.service import ReportService

    for seed in range(1, files + 1):
        record_check(store, seed=seed, at=T0 + timedelta(minutes=seed), surface="chat")
    cases = CaseService(store, CaseConfig(), clock=lambda: T0 + timedelta(hours=1))
    cases.sync()
    (case,) = cases.repo.list()
    cases.decide(case.id, "in_review", reason_code="assigned", actor="r")
    cases.decide(case.id, "confirmed", reason_code="known_material_confirmed", actor="r")
    rs = ReportService(cases)
    stored = rs.build(
        case.id,
        BuildOptions(reporter=REPORTER, chat_excerpt=chat_excerpt, files_viewed_by_esp=True),
        actor="le",
    )
    return rs, stored.id
