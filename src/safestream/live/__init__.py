"""Livestream monitoring: PyAV sources, keyframe-aware sampling, temporal policy, actions."""

from safestream.live.ingest import (
    Sample,
    Sampler,
    Source,
    SourceSampler,
    StreamContext,
    StreamError,
)
from safestream.live.monitor import (
    ACTIONS,
    ActionRequest,
    Monitor,
    SampleAnalyzer,
    SampleResult,
    StreamSession,
    TemporalPolicy,
)
from safestream.live.pool import WorkerPool

__all__ = [
    "ACTIONS",
    "ActionRequest",
    "Monitor",
    "Sample",
    "SampleAnalyzer",
    "SampleResult",
    "Sampler",
    "Source",
    "SourceSampler",
    "StreamContext",
    "StreamError",
    "StreamSession",
    "TemporalPolicy",
    "WorkerPool",
]
