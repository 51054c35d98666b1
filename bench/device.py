"""Benchmark the on-device check: device time, server CPU, bytes, filter size, false hits.

* **device time**: ``DeviceGuard.check_image`` on 1920x1080 JPEGs (photo-like,
  quality 85): fast-mode hashing, blinding 10 keys, unblinding, Bloom lookups.
  The server's evaluation runs in-process (``LocalEvaluator``) and is subtracted, so
  the figure is the device's own work (no network);
* **server CPU per check**: ``time.process_time`` around ``DeviceServer.evaluate``
  of one image's batch (10 blinded elements), and around the HTTP handler's work
  as the API does it (base64 decode/encode added);
* **bytes exchanged**: the exact JSON bodies ``HttpEvaluator`` sends and receives for
  one image (HTTP headers excluded: they depend on the client and TLS);
* **filter size per million entries**: a filter built from ``--entries`` random PDQ
  hashes, scaled linearly (its size is ``header + entries * 8 * 36 bits``);
* **false hits on unrelated images**: ``--probes`` photo-like images (seeds never in the
  bank) checked against a bank of ``--entries`` PDQ hashes, of which ``--bank-images``
  come from other photo-like images (real PDQ statistics, not only uniform bits);
* **recall beyond the guarantee**: bank hashes with ``d`` random bits flipped, share
  blocked (>= 2 segments) and warned (1 segment), measured and exact (hypergeometric).

Run: ``.venv/bin/python bench/device.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from safestream.device import DeviceGuard, DeviceServer, FileFilterSource, LocalEvaluator, oprf
from safestream.device.keys import SEGMENTS
from safestream.device.server import TokenBucket
from safestream.signals.hashing import hash_bytes
from safestream.signals.synthetic import photo_like


def _jpeg(seed: int, w: int, h: int, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo_like(seed, w, h)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class TimedEvaluator(LocalEvaluator):
    """LocalEvaluator that records the server's wall and CPU time per batch."""

    def __init__(self, server: DeviceServer) -> None:
        super().__init__(server, "bench")
        self.wall_s: list[float] = []
        self.cpu_s: list[float] = []

    def evaluate(self, elements: Any) -> tuple[list[bytes], str]:
        t0, c0 = time.perf_counter(), time.process_time()
        out = super().evaluate(elements)
        self.wall_s.append(time.perf_counter() - t0)
        self.cpu_s.append(time.process_time() - c0)
        return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(entries: int, bank_images: int, probes: int, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {"entries": entries, "bank_images": bank_images, "probes": probes}
    tmp = Path(tempfile.mkdtemp(prefix="ss-device-bench-"))
    server = DeviceServer(tmp / "device", limiter=TokenBucket(1e9, 10**12))
    server.keygen()

    # Bank: PDQ of photo-like images plus random hashes up to `entries`.
    t0 = time.perf_counter()
    bank = []
    for seed in range(bank_images):
        pdq = hash_bytes(_jpeg(seed, 640, 480), mode="exact").pdq
        if pdq:
            bank.append(pdq)
    random_hashes = [secrets.token_hex(32) for _ in range(max(0, entries - len(bank)))]
    bank += random_hashes
    results["bank_hash_s"] = round(time.perf_counter() - t0, 1)

    t0, c0 = time.perf_counter(), time.process_time()
    published = server.publish([("pdq", h) for h in bank], ["bench"])
    build_s = time.perf_counter() - t0
    build_cpu = time.process_time() - c0
    header = server.current()
    size = len(published.signed.data)
    keys = len(bank) * SEGMENTS
    results["filter"] = {
        "bytes": size,
        "pdq_entries": len(bank),
        "bytes_per_entry": round(size / len(bank), 2),
        "mb_per_million_entries": round(size / len(bank) * 1e6 / 1e6, 2),
        "build_s": round(build_s, 2),
        "build_cpu_us_per_key": round(build_cpu / keys * 1e6, 1),
        "publish_minutes_per_million_entries_1_core": round(build_cpu / keys * 8e6 / 60, 1),
        "version": header.version,
    }

    # Device time and server CPU on 1080p JPEGs.
    evaluator = TimedEvaluator(server)
    guard = DeviceGuard(
        FileFilterSource(tmp / "device" / "filter.bin"), evaluator, server.public_key()
    )
    guard.refresh()
    images = [_jpeg(10_000 + i, 1920, 1080) for i in range(8)]
    guard.check_image(images[0])  # warm-up (numba, decoder)
    evaluator.wall_s.clear()
    evaluator.cpu_s.clear()
    device_ms, hash_ms = [], []
    for r in range(rounds):
        data = images[r % len(images)]
        t0 = time.perf_counter()
        decision = guard.check_image(data)
        total = time.perf_counter() - t0
        device_ms.append((total - evaluator.wall_s[-1]) * 1000)
        hash_ms.append(decision.timings_ms["hash_ms"])
    results["device_1080p_ms"] = {
        "median": round(statistics.median(device_ms), 2),
        "p90": round(_pct(device_ms, 0.9), 2),
        "hash_median": round(statistics.median(hash_ms), 2),
        "jpeg_bytes": len(images[0]),
    }

    # Server CPU: evaluate() alone, and the API handler's work (base64 both ways).
    batch = [oprf.blind(secrets.token_bytes(20)).element for _ in range(10)]
    cpu, api_cpu = [], []
    for _ in range(rounds):
        c0 = time.process_time()
        server.evaluate(batch, device="bench")
        cpu.append(time.process_time() - c0)
        body = json.dumps({"blinded": base64.b64encode(b"".join(batch)).decode()})
        c0 = time.process_time()
        raw = base64.b64decode(json.loads(body)["blinded"], validate=True)
        out = server.evaluate([raw[i : i + 32] for i in range(0, len(raw), 32)], device="bench")
        json.dumps(
            {
                "evaluated": base64.b64encode(b"".join(out)).decode(),
                "oprf_key_id": server.oprf_key_id(),
                "count": 10,
            }
        )
        api_cpu.append(time.process_time() - c0)
    results["server_cpu_ms_per_check"] = {
        "evaluate_median": round(statistics.median(cpu) * 1000, 3),
        "handler_median": round(statistics.median(api_cpu) * 1000, 3),
        "elements": len(batch),
    }

    # Bytes: the exact bodies for one image (10 keys: MD5, SHA-256, 8 PDQ segments).
    request = json.dumps({"blinded": base64.b64encode(b"".join(batch)).decode()}).encode()
    response = json.dumps(
        {
            "evaluated": base64.b64encode(b"".join(batch)).decode(),
            "oprf_key_id": "0" * 16,
            "count": 10,
        },
        separators=(",", ":"),
    ).encode()
    results["bytes_per_image"] = {
        "request_body": len(request),
        "response_body": len(response),
        "total_bodies": len(request) + len(response),
    }

    # False hits on unrelated photo-like images.
    warn = block = 0
    for i in range(probes):
        d = guard.check_image(_jpeg(1_000_000 + i, 640, 480))
        warn += d.action == "warn"
        block += d.action == "block"
    p_seg = len(bank) / 2**32
    results["unrelated"] = {
        "probes": probes,
        "warn_rate": warn / probes,
        "block_rate": block / probes,
        "expected_warn_rate_uniform_bits": round(1 - (1 - p_seg) ** SEGMENTS, 6),
        "expected_warn_rate_uniform_bits_1M": round(1 - (1 - 1e6 / 2**32) ** SEGMENTS, 6),
        "expected_block_rate_uniform_bits_1M": float(
            f"{math.comb(SEGMENTS, 2) * (1e6 / 2**32) ** 2:.3g}"
        ),
    }

    # Recall at distances beyond the guarantee (random bit flips of bank hashes).
    rnd = random.Random(7)
    recall = {}
    for dist in (6, 7, 8, 10, 12, 16, 20, 24, 31):
        n = 60 if rounds > 20 else 20
        blocked = warned = 0
        for _ in range(n):
            h = int(rnd.choice(bank), 16)
            for b in rnd.sample(range(256), dist):
                h ^= 1 << b
            d = guard.check_hashes(secrets.token_hex(16), secrets.token_hex(32), f"{h:064x}")
            blocked += d.action == "block"
            warned += d.action == "warn"
        recall[dist] = {
            "blocked": round(blocked / n, 3),
            "at_least_warn": round((blocked + warned) / n, 3),
            "exact_p_blocked": round(1 - _p_intact(dist, 0) - _p_intact(dist, 1), 4),
            "exact_p_at_least_warn": round(1 - _p_intact(dist, 0), 4),
        }
    results["recall_random_flips"] = recall

    # Recall on ordinary transformations of photo-like images (device hashes in fast mode).
    transforms: dict[str, list[tuple[int, str]]] = {}
    for seed in range(20 if rounds > 20 else 5):
        img = Image.fromarray(photo_like(50_000 + seed, 1024, 768))
        orig = io.BytesIO()
        img.save(orig, "JPEG", quality=90)
        bank_pdq = hash_bytes(orig.getvalue(), mode="exact").pdq
        assert bank_pdq
        server.publish([("pdq", bank_pdq)], ["one"])
        guard.refresh()
        w, h = img.size
        for name, variant, q in (
            ("jpeg_q50", img, 50),
            ("half_size", img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), 80),
            ("double_size", img.resize((w * 2, h * 2), Image.Resampling.BICUBIC), 85),
            ("stretch_1080p", img.resize((1920, 1080)), 85),
            ("crop_5pct", img.crop((w // 40, h // 40, w - w // 40, h - h // 40)), 85),
        ):
            buf = io.BytesIO()
            variant.save(buf, "JPEG", quality=q)
            probe = hash_bytes(buf.getvalue(), mode="fast").pdq or ""
            dist = (int(probe, 16) ^ int(bank_pdq, 16)).bit_count() if probe else 256
            transforms.setdefault(name, []).append((dist, guard.check_image(buf.getvalue()).action))
    results["recall_transforms"] = {
        name: {
            "median_distance": statistics.median(d for d, _ in rows),
            "max_distance": max(d for d, _ in rows),
            "blocked": round(sum(a == "block" for _, a in rows) / len(rows), 3),
            "at_least_warn": round(sum(a != "allow" for _, a in rows) / len(rows), 3),
        }
        for name, rows in transforms.items()
    }
    return results


def _p_intact(dist: int, k: int) -> float:
    """Exact probability that exactly ``k`` of 8 segments hold none of ``dist`` flipped bits."""
    total = math.comb(256, dist)
    rest = SEGMENTS - k
    acc = sum(
        (-1) ** i * math.comb(rest, i) * math.comb(256 - 32 * (k + i), dist)
        for i in range(rest + 1)
    )
    return math.comb(SEGMENTS, k) * acc / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--bank-images", type=int, default=500)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.bank_images, args.probes, args.rounds = 2000, 50, 40, 10
    print(json.dumps(run(args.entries, args.bank_images, args.probes, args.rounds), indent=2))


if __name__ == "__main__":
    main()
