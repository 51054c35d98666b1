"""A real webhook receiver on 127.0.0.1 for tests, and helpers to run workers.

The receiver checks every signature with ``verify_signature``, can fail the
first k requests or hold the first one, and dedupes deliveries by their
``X-Safestream-Delivery`` id as a careful receiver should.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from safestream.actions.webhook import verify_signature
from safestream.store.db import Store

SECRET = "test-webhook-secret-0123456789abcdef"


@dataclass
class Receiver:
    """What the receiver saw; settings may be changed while it runs."""

    secret: str = SECRET
    #: Answer the first ``fail_first`` requests with ``fail_status``.
    fail_first: int = 0
    fail_status: int = 503
    #: Hold the first request (after recording it) until ``release`` is set.
    hold_first: bool = False
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: Delivery id -> payload, each recorded once.
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    bad_signatures: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        """Process one request; returns the HTTP status to answer."""
        ok = verify_signature(
            self.secret,
            headers.get("x-safestream-timestamp", ""),
            body,
            headers.get("x-safestream-signature", ""),
        )
        with self.lock:
            number = len(self.requests) + 1
            self.requests.append({"headers": headers, "body": body, "signature_ok": ok})
            if not ok:
                self.bad_signatures += 1
                return 401
            if number <= self.fail_first:
                return self.fail_status
            delivery = headers["x-safestream-delivery"]
            if delivery in self.deliveries:
                self.duplicates += 1
            else:
                self.deliveries[delivery] = json.loads(body)
        if number == 1 and self.hold_first:
            self.arrived.set()
            self.release.wait(60)
        return 200


@contextmanager
def running_receiver(receiver: Receiver | None = None) -> Iterator[Receiver]:
    """Serve ``receiver`` on a free port of 127.0.0.1 while the block runs."""
    rec = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = rec.handle(headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender is gone (killed worker)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/safestream"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()


def store_url(store: Store) -> str:
    """A URL another process can open the same database (and schema) with."""
    return store.engine.url.render_as_string(hide_password=False)


def worker_env(store: Store, receiver: Receiver, **extra: str) -> dict[str, str]:
    """Environment for a ``safestream worker`` subprocess.

    The periodic escalation and purge jobs a worker seeds at start are off (interval 0):
    these tests count the jobs a worker does, and a due periodic job would be one of
    them (``--max-jobs 1`` could take it instead of the job under test).
    """
    env = dict(os.environ)
    env.update(
        SAFESTREAM_DATABASE_URL=store_url(store),
        SAFESTREAM_WEBHOOK_URL=receiver.url,
        SAFESTREAM_WEBHOOK_SECRET=receiver.secret,
        SAFESTREAM_ESCALATION_INTERVAL_S="0",
        SAFESTREAM_PURGE_INTERVAL_S="0",
        **extra,
    )
    return env


def start_worker(env: dict[str, str], *args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``safestream worker ARGS`` in a new process."""
    return subprocess.Popen(
        [sys.executable, "-c", "from safestream.cli import main; main()", "worker", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
