"""The S3 evidence backend against moto's standalone server: configuration and failures."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from evidence_support import Clock, png, s3_backend, s3_client
from safestream.errors import ConfigError
from safestream.evidence.backends import (
    FilesystemBackend,
    S3Backend,
    backend_from_env,
)
from safestream.evidence.crypto import KeyRing
from safestream.evidence.errors import EvidenceObjectMissing, EvidenceStorageError
from safestream.evidence.store import EvidenceStore
from safestream.store.audit import AuditRepository
from safestream.store.db import Store


def test_backend_from_env() -> None:
    fs = backend_from_env({"SAFESTREAM_EVIDENCE_DIR": "/srv/evidence"})
    assert isinstance(fs, FilesystemBackend) and str(fs.directory) == "/srv/evidence"
    s3 = backend_from_env(
        {
            "SAFESTREAM_EVIDENCE_BACKEND": "S3",
            "SAFESTREAM_EVIDENCE_S3_BUCKET": "evidence-bucket",
            "SAFESTREAM_EVIDENCE_S3_PREFIX": "/prod/ev/",
            "SAFESTREAM_EVIDENCE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "id",
            "AWS_SECRET_ACCESS_KEY": "secret",
        }
    )
    assert isinstance(s3, S3Backend)
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.region) == (
        "evidence-bucket",
        "prod/ev/",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    assert s3.describe() == "s3://evidence-bucket/prod/ev/ at http://127.0.0.1:9000"
    with pytest.raises(ConfigError, match="SAFESTREAM_EVIDENCE_S3_BUCKET"):
        backend_from_env({"SAFESTREAM_EVIDENCE_BACKEND": "s3"})
    with pytest.raises(ConfigError, match="'fs' or 's3'"):
        backend_from_env({"SAFESTREAM_EVIDENCE_BACKEND": "tape"})


def test_missing_boto3_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes ``import boto3`` fail
    backend = S3Backend("bucket")
    with pytest.raises(ConfigError, match=r"pip install 'safestream\[s3\]'"):
        backend.get("x.k1.ssev")


def test_env_configured_store_round_trips_over_http(
    store: Store, moto_endpoint: str, ring: KeyRing
) -> None:
    s3_client(moto_endpoint).create_bucket(Bucket="env-bucket")
    env = {
        "SAFESTREAM_EVIDENCE_BACKEND": "s3",
        "SAFESTREAM_EVIDENCE_S3_BUCKET": "env-bucket",
        "SAFESTREAM_EVIDENCE_S3_PREFIX": f"t-{store.dialect}-{id(store)}",
        "SAFESTREAM_EVIDENCE_S3_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    ev = EvidenceStore(store, backend_from_env(env), ring)
    eid = ev.preserve(png(4), actor="k", basis="report", legal_basis="report 4").id
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket="env-bucket")["Contents"]
    assert [o["Key"] for o in listed if eid in o["Key"]] == [
        f"{env['SAFESTREAM_EVIDENCE_S3_PREFIX']}/{eid}.k1.ssev"
    ]
    assert ev.get(eid, actor="k", reason="check").content == png(4)


def test_prefix_isolates_and_keys_are_checked(moto_endpoint: str) -> None:
    a = s3_backend(moto_endpoint, "a")
    b = S3Backend(a.bucket, "b", endpoint_url=moto_endpoint, client=a.client)
    a.put_atomic("one.k1.ssev", b"1")
    b.put_atomic("two.k1.ssev", b"2")
    assert [k for k, _ in a.list_keys()] == ["one.k1.ssev"]
    assert b.get("two.k1.ssev") == b"2" and not b.exists("one.k1.ssev")
    with pytest.raises(EvidenceObjectMissing):
        b.get("one.k1.ssev")
    b.delete("one.k1.ssev")  # deleting a missing object is not an error
    with pytest.raises(ValueError, match="invalid evidence object key"):
        a.put_atomic("../escape", b"x")


def test_missing_bucket_is_a_config_error(moto_endpoint: str) -> None:
    backend = S3Backend(
        "no-such-bucket-here", endpoint_url=moto_endpoint, client=s3_client(moto_endpoint)
    )
    with pytest.raises(ConfigError, match="NoSuchBucket") as info:
        backend.put_atomic("x.k1.ssev", b"data")
    assert "SAFESTREAM_EVIDENCE_S3_BUCKET" in str(info.value)


def test_unreachable_endpoint_is_a_storage_error(store: Store, ring: KeyRing, clock: Clock) -> None:
    import boto3
    from botocore.config import Config

    client: Any = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: connection refused
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    ev = EvidenceStore(
        store, S3Backend("b", endpoint_url="http://127.0.0.1:9", client=client), ring, clock=clock
    )
    with pytest.raises(EvidenceStorageError, match="unreachable"):
        ev.preserve(png(1), actor="k", basis="report", legal_basis="report 1")
    assert ev.list_objects() == []  # nothing half-written
    assert AuditRepository(store).list_events() == []


def test_sweep_only_touches_our_objects(
    store: Store, moto_endpoint: str, ring: KeyRing, clock: Clock
) -> None:
    from datetime import timedelta

    shared = s3_backend(moto_endpoint, "")  # a bucket shared with other data, no prefix
    shared.put_atomic("notes.txt", b"someone else's file")
    ev = EvidenceStore(store, shared, ring, clock=clock)
    eid = ev.preserve(png(1), actor="k", basis="report", legal_basis="report 1").id
    orphan = "11111111-1111-1111-1111-111111111111.k1.ssev"
    shared.put_atomic(orphan, b"left by a crash")
    clock.advance(timedelta(days=3 * 365))
    assert list(ev.check_storage().orphans) == [orphan]
    assert ev.sweep_orphans() == 1
    assert sorted(k for k, _ in shared.list_keys()) == sorted(["notes.txt", ev.record(eid).path])
