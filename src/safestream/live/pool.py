"""A bounded worker pool shared by all streams, with oldest-first drops under overload.

Each stream has its own small queue (``per_stream`` jobs). When a stream's queue is
full, its oldest waiting job is dropped and counted: a stale sample is worth less than
a fresh one, and one busy stream never delays the others by more than its own queue.
Workers take streams round-robin, so a stream with a burst cannot starve the rest.
Memory is bounded by ``streams x per_stream`` samples, never an unbounded queue.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable

from safestream.cores import usable_cores
from safestream.errors import InputError

log = logging.getLogger(__name__)

Job = Callable[[], None]


class WorkerPool:
    """Threads that run per-stream jobs fairly, dropping a stream's oldest job when full."""

    def __init__(self, workers: int | None = None, *, per_stream: int = 2) -> None:
        if workers is None:
            # A worker runs one sample's hash, lookup and classifier at a time on one
            # core (onnxruntime with one thread): fewer workers than cores would leave
            # cores idle while samples are dropped.
            workers = usable_cores()
        if workers < 1 or per_stream < 1:
            raise InputError("workers and per_stream must be >= 1")
        self.per_stream = per_stream
        self._cond = threading.Condition()
        self._queues: OrderedDict[str, deque[Job]] = OrderedDict()
        self._dropped: dict[str, int] = {}
        self._closed = False
        self._running = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"safestream-live-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, stream_id: str, job: Job) -> bool:
        """Queue a job; returns False when it displaced (dropped) an older one."""
        with self._cond:
            if self._closed:
                raise InputError("the worker pool is closed")
            queue = self._queues.get(stream_id)
            if queue is None:
                queue = self._queues[stream_id] = deque()
            dropped = False
            if len(queue) >= self.per_stream:
                queue.popleft()
                self._dropped[stream_id] = self._dropped.get(stream_id, 0) + 1
                dropped = True
            queue.append(job)
            self._cond.notify()
            return not dropped

    def dropped(self, stream_id: str) -> int:
        """Jobs of a stream dropped so far."""
        with self._cond:
            return self._dropped.get(stream_id, 0)

    def pending(self) -> int:
        """Jobs waiting (not running)."""
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def idle(self) -> bool:
        """No job waiting or running."""
        with self._cond:
            return self._running == 0 and not any(self._queues.values())

    def forget(self, stream_id: str) -> None:
        """Discard a finished stream's waiting jobs (its drop count stays readable)."""
        with self._cond:
            self._queues.pop(stream_id, None)

    def _next(self) -> Job | None:
        with self._cond:
            while True:
                for stream_id, queue in self._queues.items():
                    if queue:
                        job = queue.popleft()
                        self._running += 1
                        self._queues.move_to_end(stream_id)  # round-robin
                        return job
                if self._closed:
                    return None
                self._cond.wait()

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                job()
            except Exception:  # a job's failure must not kill the worker
                log.exception("live job failed")
            finally:
                with self._cond:
                    self._running -= 1

    def close(self, *, wait: bool = True) -> None:
        """Stop after the queued jobs; join the threads when ``wait``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait:
            for t in self._threads:
                t.join()
