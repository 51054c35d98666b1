"""Where evidence ciphertext lives: a small storage-backend interface and two backends.

Backends only ever see ciphertext (``MAGIC || nonce || AES-256-GCM``):
encryption and the SHA-256 check stay in :mod:`safestream.evidence.store`, in
our process. A backend stores whole objects by key and must make each write
atomic: a reader sees the old object, the new one, or none, never a part.

* :class:`FilesystemBackend`: one file per key in a directory; writes go to a
  fsynced temporary file renamed into place.
* :class:`S3Backend`: an S3-compatible bucket (AWS S3, MinIO, Ceph RGW) via
  boto3 (the ``s3`` extra); a PUT is atomic by the S3 contract.

Configuration (``backend_from_env``): ``SAFESTREAM_EVIDENCE_BACKEND=fs|s3``;
for ``fs`` ``SAFESTREAM_EVIDENCE_DIR``; for ``s3`` ``SAFESTREAM_EVIDENCE_S3_BUCKET``
(required), ``SAFESTREAM_EVIDENCE_S3_PREFIX`` and
``SAFESTREAM_EVIDENCE_S3_ENDPOINT_URL`` (MinIO/Ceph); region and credentials
come from the standard AWS variables (``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
...) or boto3's other usual sources (profile, instance role).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from safestream.errors import ConfigError
from safestream.evidence.errors import EvidenceObjectMissing, EvidenceStorageError
from safestream.store.db import default_data_dir

ENV_BACKEND = "SAFESTREAM_EVIDENCE_BACKEND"
ENV_DIR = "SAFESTREAM_EVIDENCE_DIR"
ENV_S3_BUCKET = "SAFESTREAM_EVIDENCE_S3_BUCKET"
ENV_S3_PREFIX = "SAFESTREAM_EVIDENCE_S3_PREFIX"
ENV_S3_ENDPOINT = "SAFESTREAM_EVIDENCE_S3_ENDPOINT_URL"
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
#: Temporary files of the filesystem backend start with this.
TMP_PREFIX = ".tmp-"


def _check_key(key: str) -> str:
    # Keys are ours (``<uuid>.<key id>.ssev``); refuse anything that could climb out.
    if not _KEY.match(key) or key.startswith(".."):
        raise ValueError(f"invalid evidence object key {key!r}")
    return key


@runtime_checkable
class EvidenceBackend(Protocol):
    """Stores whole ciphertext objects by key; every write is atomic."""

    #: ``fs`` or ``s3``.
    name: str

    def describe(self) -> str:
        """Where objects live, for messages (a directory, ``s3://bucket/prefix``)."""

    def put_atomic(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``: afterwards the whole object is there, or nothing."""

    def get(self, key: str) -> bytes:
        """The object's bytes; :class:`EvidenceObjectMissing` when there is none."""

    def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every stored key with its last-modified time (UTC), in no set order."""


class FilesystemBackend:
    """One file per object in a directory (mode 0700, files 0600)."""

    name = "fs"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> str:
        """The directory."""
        return str(self.directory)

    def _dir(self) -> Path:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the evidence directory {self.directory}: {exc.strerror}; "
                f"set {ENV_DIR} to a writable directory"
            ) from exc
        return self.directory

    def put_atomic(self, key: str, data: bytes) -> None:
        """Write a fsynced temporary file, rename it into place, fsync the directory."""
        final = self._dir() / _check_key(key)
        tmp = self.directory / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)

    def get(self, key: str) -> bytes:
        """The file's bytes."""
        try:
            return (self.directory / _check_key(key)).read_bytes()
        except FileNotFoundError:
            raise EvidenceObjectMissing(key) from None

    def delete(self, key: str) -> None:
        """Unlink the file."""
        (self.directory / _check_key(key)).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """True when the file exists."""
        return (self.directory / _check_key(key)).is_file()

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every file (temporary ones included, so that stale ones can be swept)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            try:
                if not path.is_file():
                    continue
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            yield path.name, datetime.fromtimestamp(mtime, UTC)


def _fsync_dir(path: Path) -> None:
    # Makes the rename durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _boto3() -> Any:
    try:
        # Through importlib: boto3 is optional and ships no type information.
        boto3 = importlib.import_module("boto3")
    except ImportError:
        raise ConfigError(
            "the S3 evidence backend needs boto3: pip install 'safestream[s3]'"
        ) from None
    return boto3


#: S3 error codes that mean the configuration is wrong, not the object.
_CONFIG_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
}


class S3Backend:
    """Objects in an S3-compatible bucket under an optional key prefix.

    A PUT is atomic in S3 (a reader sees the previous object or the new one),
    so no temporary object is needed. The client is created lazily; pass
    ``client`` to reuse one (tests do, against moto's server).
    """

    name = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        credentials: Mapping[str, str] | None = None,
        client: Any = None,
    ) -> None:
        if not bucket.strip():
            raise ConfigError(f"{ENV_S3_BUCKET} is empty; name the bucket that holds evidence")
        self.bucket = bucket.strip()
        cleaned = prefix.strip().strip("/")
        self.prefix = f"{cleaned}/" if cleaned else ""
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self._credentials = dict(credentials or {})
        self._client = client

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Backend:
        """The bucket named by ``SAFESTREAM_EVIDENCE_S3_*`` and the AWS variables."""
        env = os.environ if environ is None else environ
        bucket = env.get(ENV_S3_BUCKET, "").strip()
        if not bucket:
            raise ConfigError(
                f"{ENV_BACKEND}=s3 needs {ENV_S3_BUCKET} (and, for MinIO or Ceph, "
                f"{ENV_S3_ENDPOINT})"
            )
        creds = {
            name: env[var]
            for name, var in (
                ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                ("aws_session_token", "AWS_SESSION_TOKEN"),
            )
            if env.get(var)
        }
        return cls(
            bucket,
            env.get(ENV_S3_PREFIX, ""),
            endpoint_url=env.get(ENV_S3_ENDPOINT, "").strip() or None,
            region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip() or None,
            credentials=creds,
        )

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use)."""
        if self._client is None:
            boto3 = _boto3()
            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region, **self._credentials
            )
        return self._client

    def describe(self) -> str:
        """``s3://bucket/prefix`` (and the endpoint when not AWS)."""
        where = f"s3://{self.bucket}/{self.prefix}"
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def _error(self, exc: Exception, doing: str) -> Exception:
        code = _code(exc)
        if code in _CONFIG_CODES:
            return ConfigError(
                f"evidence bucket {self.describe()}: {doing} failed with {code}; check "
                f"{ENV_S3_BUCKET}, {ENV_S3_ENDPOINT} and the AWS credentials and region"
            )
        return EvidenceStorageError(
            f"evidence bucket {self.describe()}: {doing} failed ({code or type(exc).__name__}); "
            "the storage may be unreachable, try again"
        )

    def put_atomic(self, key: str, data: bytes) -> None:
        """One PUT (atomic in S3)."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + _check_key(key),
                Body=data,
                ContentType="application/octet-stream",
            )
        except Exception as exc:  # botocore raises ClientError / EndpointConnectionError
            if _is_boto_error(exc):
                raise self._error(exc, "storing an object") from exc
            raise

    def get(self, key: str) -> bytes:
        """GET the object."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + _check_key(key))
            body: bytes = response["Body"].read()
        except Exception as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise EvidenceObjectMissing(key) from None
            if _is_boto_error(exc):
                raise self._error(exc, "reading an object") from exc
            raise
        return body

    def delete(self, key: str) -> None:
        """DELETE the object (S3 answers 204 for a missing key too)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + _check_key(key))
        except Exception as exc:
            if _is_boto_error(exc):
                raise self._error(exc, "deleting an object") from exc
            raise

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + _check_key(key))
        except Exception as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return False
            if _is_boto_error(exc):
                raise self._error(exc, "checking an object") from exc
            raise
        return True

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every key under the prefix (paginated)."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])[len(self.prefix) :]
                    if key and "/" not in key:
                        modified = item["LastModified"]
                        if modified.tzinfo is None:
                            modified = modified.replace(tzinfo=UTC)
                        yield key, modified
        except Exception as exc:
            if _is_boto_error(exc):
                raise self._error(exc, "listing objects") from exc
            raise


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _is_boto_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("botocore", "boto3"))


def evidence_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$SAFESTREAM_EVIDENCE_DIR`` or ``<data dir>/evidence``."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_DIR, "").strip()
    return Path(raw).expanduser() if raw else default_data_dir() / "evidence"


def backend_from_env(environ: Mapping[str, str] | None = None) -> EvidenceBackend:
    """The backend chosen by ``SAFESTREAM_EVIDENCE_BACKEND`` (``fs``, the default, or ``s3``)."""
    env = os.environ if environ is None else environ
    kind = env.get(ENV_BACKEND, "").strip().lower() or "fs"
    if kind == "fs":
        return FilesystemBackend(evidence_dir(env))
    if kind == "s3":
        return S3Backend.from_env(env)
    raise ConfigError(f"{ENV_BACKEND} must be 'fs' or 's3', got {kind!r}")


__all__ = [
    "EvidenceBackend",
    "FilesystemBackend",
    "S3Backend",
    "backend_from_env",
    "evidence_dir",
]
