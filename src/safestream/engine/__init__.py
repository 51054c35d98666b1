"""The pipeline: content -> signals -> matches -> verdict."""

from safestream.engine.check import Engine, EngineOptions
from safestream.engine.verdict import ContentContext, Match, Verdict

__all__ = ["ContentContext", "Engine", "EngineOptions", "Match", "Verdict"]
