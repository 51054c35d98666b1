"""Benchmark the HTTP service: lookups/s and checks/s through ``safestream serve``.

In one run, on one bank of ``--hashes`` random PDQ hashes (default 1M):

1. load: a ``te`` hash list is generated and imported with ``safestream bank
   import`` (timed), then the in-process engine is built from the store (timed);
2. in-process baseline: ``Engine.lookup`` and ``Engine.check_bytes`` called in a
   loop in this process (one thread), lookups/s, checks/s and p50/p99 latency;
3. for each ``--workers`` count: ``safestream serve --workers N`` is started
   (time to ready printed), then ``POST /v1/lookup`` (one hash per request) and
   ``POST /v1/check`` (a 640x480 JPEG) are driven for ``--duration`` seconds each
   by a load generator on localhost with ``--connections`` concurrent
   connections: ``wrk`` (Debian package; one client thread, so that the client
   takes as little of the 2 cores as it can) or, without it, an asyncio client
   on httpx2 (which costs the server far more CPU: prefer wrk);
4. the ratio of each HTTP figure to the in-process one: the service's overhead.

Lookups are 90 % random hashes (no match) and 10 % hashes a few bits away from
a stored one (a match, with its entry read from the database). The server and
the client share the machine: compare the ratios, not the absolute figures.

Run: ``.venv/bin/python bench/api.py`` (about 5 minutes with 1M hashes).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BANK = "bench"
MATCH_SHARE = 0.10


@dataclass
class Figures:
    """Throughput and latency of one measurement."""

    label: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def row(self, baseline: Figures | None = None) -> str:
        ratio = f"{self.per_s / baseline.per_s:.2f}" if baseline and baseline.per_s else "-"
        return (
            f"| {self.label} | {self.per_s:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} "
            f"| {self.errors} | {ratio} |"
        )


def percentile_ms(latencies_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(latencies_s), q) * 1000) if latencies_s else 0.0


# -- data ---------------------------------------------------------------------------


def make_hashes(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)


def write_te_list(hashes: np.ndarray[Any, np.dtype[np.uint8]], path: Path) -> None:
    """``pdq <hex>`` per line (python-threatexchange's local_file format)."""
    with path.open("w") as out:
        for start in range(0, len(hashes), 100_000):
            block = hashes[start : start + 100_000]
            out.write("".join(f"pdq {row.tobytes().hex()}\n" for row in block))


def make_queries(
    hashes: np.ndarray[Any, np.dtype[np.uint8]], n: int, seed: int
) -> tuple[list[str], int]:
    """``n`` query hashes, MATCH_SHARE of them 0..15 bits from a stored hash."""
    rng = np.random.default_rng(seed + 1)
    queries = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    planted = int(n * MATCH_SHARE)
    for i, row in enumerate(rng.choice(len(hashes), size=planted, replace=False).tolist()):
        q = hashes[row].copy()
        for bit in rng.choice(256, size=i % 16, replace=False):
            q[bit // 8] ^= np.uint8(1 << (bit % 8))
        queries[i] = q
    order = rng.permutation(n)
    return [queries[i].tobytes().hex() for i in order], planted


def make_images(n: int) -> list[bytes]:
    from safestream.demo import synthetic_image

    out = []
    for seed in range(n):
        buf = io.BytesIO()
        synthetic_image(1000 + seed, (640, 480)).convert("RGB").save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


# -- the command ----------------------------------------------------------------------


def safestream(global_args: list[str], *args: str, timeout: float = 3600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "safestream.cli", *global_args, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise SystemExit(f"safestream {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``safestream serve --workers N`` in its own process group."""

    def __init__(self, global_args: list[str], workers: int, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ}
        env.pop("SAFESTREAM_DATABASE_URL", None)
        env.pop("SAFESTREAM_DATA_DIR", None)
        self.started = time.monotonic()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "safestream.cli",
                    *global_args,
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 600) -> float:
        import httpx2

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx2.get(f"{self.url}/v1/ready", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"serve not ready after {timeout_s} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


# -- in-process baseline --------------------------------------------------------------


def timed_loop(label: str, items: list[Any], call: Callable[[Any], Any], seconds: float) -> Figures:
    latencies: list[float] = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        call(items[i % len(items)])
        latencies.append(time.perf_counter() - t)
        i += 1
    elapsed = time.perf_counter() - started
    return Figures(label, i, elapsed, percentile_ms(latencies, 50), percentile_ms(latencies, 99))


# -- load generators ------------------------------------------------------------------

WRK_LUA = """
local bodies = {}
for i = 1, %(count)d do
  local f = assert(io.open(string.format("%(dir)s/body-%%d", i), "rb"))
  bodies[i] = f:read("*all")
  f:close()
end
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.headers["Content-Type"] = "%(content_type)s"
local n = 0
request = function()
  n = n %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, "
    .. "\\"status_errors\\": %%d, \\"socket_errors\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(
    label: str,
    url: str,
    key: str,
    bodies: list[bytes],
    content_type: str,
    connections: int,
    seconds: float,
    workdir: Path,
) -> Figures:
    d = workdir / f"wrk-{secrets.token_hex(4)}"
    d.mkdir()
    for i, body in enumerate(bodies, 1):
        (d / f"body-{i}").write_bytes(body)
    script = d / "script.lua"
    script.write_text(
        WRK_LUA % {"count": len(bodies), "dir": d, "key": key, "content_type": content_type}
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    match = re.search(r"^RESULT (\{.*\})$", out.stdout, re.M)
    if not match:
        raise SystemExit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    r = json.loads(match.group(1))
    shutil.rmtree(d, ignore_errors=True)
    return Figures(
        label,
        int(r["requests"]),
        r["duration_us"] / 1e6,
        r["p50_us"] / 1000,
        r["p99_us"] / 1000,
        int(r["status_errors"]) + int(r["socket_errors"]),
    )


def run_python_client(
    label: str,
    url: str,
    key: str,
    bodies: list[bytes],
    content_type: str,
    connections: int,
    seconds: float,
    workdir: Path,
) -> Figures:
    import httpx2

    async def main() -> Figures:
        latencies: list[float] = []
        errors = 0
        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
        async with httpx2.AsyncClient(limits=limits, headers=headers, timeout=10) as client:
            stop = time.perf_counter() + seconds

            async def worker(k: int) -> None:
                nonlocal errors
                i = k
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    try:
                        r = await client.post(url, content=bodies[i % len(bodies)])
                        if r.status_code != 200:
                            errors += 1
                    except httpx2.TransportError:
                        errors += 1
                    latencies.append(time.perf_counter() - t)
                    i += connections

            started = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(connections)))
            elapsed = time.perf_counter() - started
        return Figures(
            label,
            len(latencies),
            elapsed,
            percentile_ms(latencies, 50),
            percentile_ms(latencies, 99),
            errors,
        )

    return asyncio.run(main())


def multipart(image: bytes, boundary: str) -> bytes:
    return (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="upload.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )


# -- main -------------------------------------------------------------------------------


def chunks(seq: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=1_000_000, help="PDQ hashes in the bank")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--check-connections", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--data-dir", type=Path, default=None, help="kept; reused if loaded")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    drive = run_wrk if client == "wrk" else run_python_client

    tmp = Path(tempfile.mkdtemp(prefix="safestream-bench-api-"))
    data_dir = args.data_dir or tmp / "data"
    global_args = ["--data-dir", str(data_dir)]
    if args.database_url:
        global_args += ["--database-url", args.database_url]
    from safestream.engine.check import Engine, EngineOptions
    from safestream.store.banks import BankRepository
    from safestream.store.db import Store

    print(f"# safestream API benchmark: {args.hashes:,} PDQ hashes, client {client}")
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    hashes = make_hashes(args.hashes, args.seed)
    queries, planted = make_queries(hashes, args.queries, args.seed)

    # -- load ------------------------------------------------------------------------
    store = Store.open(args.database_url, data_dir=data_dir)
    existing = {b.name: b for b in BankRepository(store).list_banks()}
    if BANK in existing and existing[BANK].entry_count == args.hashes:
        print(f"reusing bank {BANK!r} with {args.hashes:,} entries in {data_dir}")
    else:
        t = time.perf_counter()
        te = tmp / "bank.te.txt"
        write_te_list(hashes, te)
        gen_s = time.perf_counter() - t
        safestream(global_args, "bank", "create", BANK, "--source", "bench")
        t = time.perf_counter()
        result = json.loads(safestream(global_args, "bank", "import", BANK, str(te)))
        import_s = time.perf_counter() - t
        te.unlink()
        print(
            f"load: list generated in {gen_s:.1f} s; `safestream bank import` of "
            f"{result.get('entries_added', '?'):,} entries in {import_s:.1f} s "
            f"({args.hashes / import_s:,.0f} entries/s)"
        )
    t = time.perf_counter()
    engine = Engine.open(store, EngineOptions(mode="exact"))
    print(f"in-process engine built from the store in {time.perf_counter() - t:.1f} s")

    images = make_images(args.images)
    # Sanity: planted queries match, random ones almost never.
    found = sum(bool(engine.lookup("pdq", q)) for q in queries)
    print(f"queries: {len(queries)}, planted near-matches {planted}, matched {found}")

    # -- in-process -------------------------------------------------------------------
    base_lookup = timed_loop(
        "in-process Engine.lookup", queries, lambda q: engine.lookup("pdq", q), args.duration
    )
    base_check = timed_loop(
        "in-process Engine.check_bytes", images, engine.check_bytes, args.duration
    )
    store.dispose()

    # -- HTTP ------------------------------------------------------------------------
    key = safestream(global_args, "keys", "create", "--role", "integrator").strip()
    lookup_bodies = [
        json.dumps({"hashes": [{"signal_type": "pdq", "value": q}]}).encode() for q in queries
    ]
    boundary = "safestreambench" + secrets.token_hex(8)
    check_bodies = [multipart(img, boundary) for img in images]
    lookup_rows: list[str] = [base_lookup.row()]
    check_rows: list[str] = [base_check.row()]
    for workers in args.workers:
        server = Server(global_args, workers, tmp / f"serve-{workers}.log")
        try:
            ready = server.wait_ready()
            print(f"serve --workers {workers}: ready after {ready:.1f} s")
            _verify(server.url, key, queries, found)
            # A short warm-up so that first-request costs are not measured.
            drive(
                "warm-up",
                f"{server.url}/v1/lookup",
                key,
                lookup_bodies,
                "application/json",
                8,
                2,
                tmp,
            )
            for conns in args.connections:
                f = drive(
                    f"HTTP lookup, {workers} worker(s), {conns} connections",
                    f"{server.url}/v1/lookup",
                    key,
                    lookup_bodies,
                    "application/json",
                    conns,
                    args.duration,
                    tmp,
                )
                lookup_rows.append(f.row(base_lookup))
                print(lookup_rows[-1], flush=True)
            f = drive(
                f"HTTP check, {workers} worker(s), {args.check_connections} connections",
                f"{server.url}/v1/check",
                key,
                check_bodies,
                f"multipart/form-data; boundary={boundary}",
                args.check_connections,
                args.duration,
                tmp,
            )
            check_rows.append(f.row(base_check))
            print(check_rows[-1], flush=True)
        finally:
            server.stop()

    head = "| | per second | p50 (ms) | p99 (ms) | errors | ratio to in-process |\n"
    head += "| --- | ---: | ---: | ---: | ---: | ---: |"
    print("\n## lookups (one PDQ hash per request)\n")
    print(head)
    print("\n".join(lookup_rows))
    print("\n## checks (640x480 JPEG upload)\n")
    print(head)
    print("\n".join(check_rows))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    if args.data_dir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _verify(url: str, key: str, queries: list[str], expected: int) -> None:
    """The service gives the same matches as the in-process engine."""
    import httpx2

    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
        got = 0
        for batch in chunks(queries, 500):
            r = c.post(
                "/v1/lookup",
                json={"hashes": [{"signal_type": "pdq", "value": q} for q in batch]},
                timeout=60,
            )
            r.raise_for_status()
            got += sum(bool(res["matches"]) for res in r.json()["results"])
    if got != expected:
        raise SystemExit(f"HTTP lookups matched {got} queries, in-process {expected}")


if __name__ == "__main__":
    sys.exit(main())
