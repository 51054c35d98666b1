"""The detection pipeline for images: content -> signals -> matches -> verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safestream.banks.model import Bank, BankEntry
from safestream.engine.matcher import Hit, Matcher
from safestream.engine.verdict import ContentContext, Match, Outcome, Verdict
from safestream.errors import InputError
from safestream.signals.base import get_signal_type
from safestream.signals.hashing import ImageHashes, hash_bytes, hash_file
from safestream.signals.pdq import DEFAULT_MIN_QUALITY
from safestream.store.banks import BankRepository
from safestream.store.db import Store

#: Names of the 8 PDQ dihedral variants, in pdqhash's order.
DIHEDRAL_VARIANTS = ("original", "rot90", "rot180", "rot270", "flipx", "flipy", "flip+1", "flip-1")
CRYPTO_TYPES = ("md5", "sha1", "sha256")


def apply_allow_list(
    matches: Sequence[Match], reasons: list[str]
) -> tuple[list[Match], list[Match], list[Match]]:
    """Split matches: ``(standing, suppressed, allow-list matches)``.

    An exact allow-list hit (the very same file is known benign) suppresses
    everything; a perceptual one suppresses only perceptual matches: a known-bad
    file's exact hash always stands. Each allow-list match adds a reason.
    """
    allow = [m for m in matches if m.is_allow_list]
    block = [m for m in matches if not m.is_allow_list]
    if not allow:
        return block, [], []
    exact_allow = any(m.signal_type != "pdq" for m in allow)
    suppressed = [m for m in block if exact_allow or m.signal_type == "pdq"]
    for m in allow:
        reasons.append(
            f"allow-list bank {m.bank!r} matched ({m.signal_type}, {m.distance_bits} bits): "
            "suppresses " + ("all matches" if exact_allow else "perceptual matches")
        )
    return [m for m in block if m not in suppressed], suppressed, allow


@dataclass(frozen=True)
class EngineOptions:
    """How content is hashed and matched."""

    #: ``"exact"`` (full decode, the path HMA uses) or ``"fast"`` (reduced decode).
    mode: str = "exact"
    #: PDQ hashes of lower quality are not matched (crypto hashes still are).
    min_quality: int = DEFAULT_MIN_QUALITY
    #: Also match the 8 rotations/flips of the image.
    dihedral: bool = False
    #: Pixel limit against decompression bombs (None: Pillow's default).
    max_pixels: int | None = None
    #: Match every frame of an animated image (GIF, WebP, APNG), not only the first.
    animated_frames: bool = True

    def hash_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`hash_bytes` / :func:`hash_file`."""
        return {
            "mode": self.mode,
            "min_quality": self.min_quality,
            "dihedral": self.dihedral,
            "max_pixels": self.max_pixels,
            "animated_frames": self.animated_frames,
        }

    def __post_init__(self) -> None:
        if self.mode not in ("exact", "fast"):
            raise InputError(f"mode must be 'exact' or 'fast', got {self.mode!r}")
        if not 0 <= self.min_quality <= 100:
            raise InputError(f"min_quality must be 0..100, got {self.min_quality}")


class Engine:
    """Checks content against every enabled bank."""

    def __init__(
        self,
        repo: BankRepository,
        options: EngineOptions | None = None,
        *,
        snapshot_dir: Path | None = None,
    ) -> None:
        self.repo = repo
        self.options = options or EngineOptions()
        self.matcher = Matcher.build(repo, snapshot_dir)

    @classmethod
    def open(
        cls, store: Store, options: EngineOptions | None = None, *, snapshot_dir: Path | None = None
    ) -> Engine:
        """An engine over the banks in ``store`` (index snapshot in ``snapshot_dir``)."""
        return cls(BankRepository(store), options, snapshot_dir=snapshot_dir)

    def refresh(self) -> int:
        """Pick up bank changes made since the engine was built or last refreshed."""
        return self.matcher.refresh()

    # -- entry points ----------------------------------------------------------

    def check_bytes(self, data: bytes, context: ContentContext | None = None) -> Verdict:
        """Hash image bytes and check them. Bad images raise ImageError."""
        return self.check_hashes(hash_bytes(data, **self.options.hash_kwargs()), context)

    def check_file(self, path: Path, context: ContentContext | None = None) -> Verdict:
        """Hash an image file and check it."""
        return self.check_hashes(hash_file(path, **self.options.hash_kwargs()), context)

    def check_hashes(self, hashes: ImageHashes, context: ContentContext | None = None) -> Verdict:
        """Check already computed hashes (e.g. from a worker process)."""
        reasons: list[str] = []
        hits: list[tuple[Hit, str]] = []
        for signal_type in CRYPTO_TYPES:
            value = getattr(hashes, signal_type)
            hits.extend((h, "original") for h in self.matcher.search_exact(signal_type, value))
        if hashes.pdq is None:
            reasons.append(
                f"PDQ quality {hashes.pdq_quality} is below {self.options.min_quality}: "
                "perceptual matching skipped, exact hashes checked"
            )
        else:
            variants = list(hashes.pdq_dihedral) if hashes.pdq_dihedral else [hashes.pdq]
            names = DIHEDRAL_VARIANTS if hashes.pdq_dihedral else ("original",)
            hits.extend((h, names[h.query_index]) for h in self.matcher.search_pdq(variants))
        # Every other frame of an animation: a known picture may be any of them.
        frames = [f for f in hashes.frames if f.frame_index > 0 and f.pdq is not None]
        if frames:
            hits.extend(
                (h, f"frame {frames[h.query_index].frame_index}")
                for h in self.matcher.search_pdq([f.pdq for f in frames if f.pdq is not None])
            )
        verdict = self._decide(hits, reasons, context)
        return Verdict(
            outcome=verdict.outcome,
            matches=verdict.matches,
            suppressed=verdict.suppressed,
            allow_matches=verdict.allow_matches,
            reasons=verdict.reasons,
            signals=hashes.to_dict(),
            context=context,
        )

    def lookup(self, signal_type: str, value: str, *, radius: int | None = None) -> list[Match]:
        """Bank entries matching one hash, each bank's own threshold applied.

        ``radius`` overrides the bank thresholds for PDQ (to explore near misses).
        Disabled banks are skipped; allow-list matches are returned flagged.
        """
        return self.resolve(self.lookup_hits(signal_type, value, radius=radius), radius=radius)

    def lookup_hits(self, signal_type: str, value: str, *, radius: int | None = None) -> list[Hit]:
        """Raw index hits for one hash: memory only, no database (see :meth:`resolve`)."""
        st = get_signal_type(signal_type)
        canonical = st.parse(value)
        if st.name == "pdq":
            return self.matcher.search_pdq([canonical], radius)
        return self.matcher.search_exact(st.name, canonical)

    def resolve(self, hits: Sequence[Hit], *, radius: int | None = None) -> list[Match]:
        """Matches for raw hits: reads the entries (database) and applies bank settings."""
        return self._resolve([(h, "original") for h in hits], override_radius=radius)

    # -- policy of this stage --------------------------------------------------

    def _resolve(
        self, hits: Sequence[tuple[Hit, str]], *, override_radius: int | None = None
    ) -> list[Match]:
        if not hits:
            return []
        entries = self.repo.entries_by_ids(h.entry_id for h, _ in hits)
        best: dict[int, Match] = {}
        for hit, variant in hits:
            entry = entries.get(hit.entry_id)
            if entry is None:  # removed since the index was refreshed
                continue
            bank = self.matcher.banks.get(entry.bank_id)
            if bank is None or not bank.enabled:
                continue
            threshold = self._threshold(bank, hit.signal_type, override_radius)
            if hit.distance_bits > threshold:
                continue
            match = _match(bank, entry, hit, variant, threshold)
            previous = best.get(entry.id)
            if previous is None or match.distance_bits < previous.distance_bits:
                best[entry.id] = match
        return sorted(best.values(), key=lambda m: (m.distance_bits, m.bank, m.entry_id))

    @staticmethod
    def _threshold(bank: Bank, signal_type: str, override: int | None) -> int:
        if signal_type != "pdq":
            return 0
        return bank.pdq_threshold if override is None else override

    def _decide(
        self, hits: Sequence[tuple[Hit, str]], reasons: list[str], context: ContentContext | None
    ) -> Verdict:
        block, suppressed, allow = apply_allow_list(self._resolve(hits), reasons)
        for m in block:
            reasons.append(
                f"{m.signal_type} match in bank {m.bank!r} at {m.distance_bits} bits "
                f"(threshold {m.threshold_bits}, variant {m.variant})"
            )
        outcome: Outcome
        if block:
            outcome = "match"
        elif suppressed:
            outcome = "suppressed"
        else:
            outcome = "no_match"
            if not reasons:
                reasons.append("no bank entry within threshold")
        return Verdict(
            outcome=outcome,
            matches=tuple(block),
            suppressed=tuple(suppressed),
            allow_matches=tuple(allow),
            reasons=tuple(reasons),
            context=context,
        )


def _match(bank: Bank, entry: BankEntry, hit: Hit, variant: str, threshold: int) -> Match:
    return Match(
        bank=bank.name,
        bank_id=bank.id,
        entry_id=entry.id,
        signal_type=hit.signal_type,
        distance_bits=hit.distance_bits,
        threshold_bits=threshold,
        is_allow_list=bank.is_allow_list,
        variant=variant,
        external_id=entry.external_id,
        source=entry.source,
        labels=entry.labels,
    )
