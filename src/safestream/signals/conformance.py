"""Conformance kit: checks every :class:`SignalType` plug-in must pass.

Call :func:`check_signal_type` from a plug-in's tests (or parametrise over
``safestream.signals.signal_types()``, as ``tests/signals`` does).  Each check raises
``AssertionError`` with a message naming the plug-in and the broken promise; the kit
needs no test framework.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from safestream.errors import SignalValueError
from safestream.signals.base import SignalType


def random_value(signal_type: type[SignalType], rng: random.Random) -> str:
    """A random canonical value of ``signal_type`` (lower-case hex of the right length)."""
    return f"{rng.getrandbits(signal_type.hash_length_bits):0{signal_type.hex_length()}x}"


def _flip_bits(value: str, n_bits: int, rng: random.Random) -> str:
    width = len(value) * 4
    positions = rng.sample(range(width), n_bits)
    number = int(value, 16)
    for p in positions:
        number ^= 1 << p
    return f"{number:0{len(value)}x}"


def _raises_value_error(signal_type: type[SignalType], bad: str, why: str) -> None:
    try:
        signal_type.parse(bad)
    except SignalValueError as exc:
        assert str(exc), f"{signal_type.name}: SignalValueError for {why} has no message"
        return
    except Exception as exc:
        raise AssertionError(
            f"{signal_type.name}: parse({bad!r}) ({why}) raised {type(exc).__name__}, "
            "expected SignalValueError"
        ) from exc
    raise AssertionError(f"{signal_type.name}: parse({bad!r}) ({why}) did not raise")


def check_declaration(signal_type: type[SignalType]) -> None:
    """Name, metric, length and threshold are declared and consistent."""
    name = signal_type.name
    assert name and name == name.lower() and name.strip() == name, f"bad name {name!r}"
    assert signal_type.distance_metric in ("hamming", "exact"), (
        f"{name}: unknown distance_metric {signal_type.distance_metric!r}"
    )
    assert signal_type.hash_length_bits > 0 and signal_type.hash_length_bits % 4 == 0, (
        f"{name}: hash_length_bits must be a positive multiple of 4"
    )
    assert signal_type.default_threshold >= 0, f"{name}: negative default_threshold"
    if signal_type.distance_metric == "exact":
        assert signal_type.default_threshold == 0, f"{name}: exact types match at 0 only"


def check_parse(signal_type: type[SignalType], values: Sequence[str]) -> None:
    """Round trip, canonicalisation, and rejection of malformed values."""
    name = signal_type.name
    n = signal_type.hex_length()
    for value in values:
        canonical = signal_type.parse(value)
        assert canonical == value.strip().lower(), f"{name}: parse did not canonicalise"
        assert signal_type.parse(canonical) == canonical, f"{name}: parse is not idempotent"
        assert signal_type.parse(value.upper()) == canonical, f"{name}: upper case rejected"
        assert signal_type.parse(f"  {value}\n") == canonical, f"{name}: whitespace kept"
        assert len(canonical) == n, f"{name}: canonical value has the wrong length"
        _raises_value_error(signal_type, canonical[:-1], "one character short")
        _raises_value_error(signal_type, canonical + "0", "one character long")
        _raises_value_error(signal_type, "g" + canonical[1:], "non-hex character")
        _raises_value_error(signal_type, canonical[:-2] + " 0", "inner space")
    _raises_value_error(signal_type, "", "empty")
    _raises_value_error(signal_type, "   ", "blank")
    _raises_value_error(signal_type, "z" * n, "all non-hex")


def check_distance(signal_type: type[SignalType], values: Sequence[str], seed: int = 0) -> None:
    """Identity, symmetry, non-negativity, bounds, and ``matches`` at the threshold."""
    name = signal_type.name
    rng = random.Random(seed)
    bits = signal_type.hash_length_bits
    for a in values:
        assert signal_type.distance(a, a) == 0, f"{name}: distance(a, a) != 0"
        assert signal_type.matches(a, a), f"{name}: a value does not match itself"
        for b in values:
            d = signal_type.distance(a, b)
            assert d == signal_type.distance(b, a), f"{name}: distance is not symmetric"
            assert d >= 0, f"{name}: negative distance"
            assert (d == 0) == (a == b), f"{name}: distance 0 iff equal is broken"
            if signal_type.distance_metric == "hamming":
                assert d <= bits, f"{name}: distance over {bits} bits"
        t = signal_type.default_threshold
        if signal_type.distance_metric == "hamming":
            at = _flip_bits(a, t, rng)
            over = _flip_bits(a, t + 1, rng)
            assert signal_type.distance(a, at) == t, f"{name}: flipping {t} bits"
            assert signal_type.matches(a, at), f"{name}: distance == threshold must match"
            assert not signal_type.matches(a, over), f"{name}: threshold + 1 must not match"
            assert signal_type.matches(a, over, threshold=t + 1), f"{name}: explicit threshold"
            assert not signal_type.matches(a, at, threshold=t - 1) or t == 0
        else:
            other = _flip_bits(a, 1, rng)
            assert signal_type.distance(a, other) > 0, f"{name}: different values at 0"
            assert not signal_type.matches(a, other), f"{name}: exact type matched a change"


def check_signal_type(
    signal_type: type[SignalType], values: Sequence[str] | None = None, *, seed: int = 0
) -> None:
    """Run every conformance check on ``signal_type``.

    ``values`` are canonical example values; by default 8 random ones plus all-zero
    and all-``f`` values.
    """
    if values is None:
        rng = random.Random(seed)
        n = signal_type.hex_length()
        values = ["0" * n, "f" * n] + [random_value(signal_type, rng) for _ in range(8)]
    check_declaration(signal_type)
    check_parse(signal_type, values)
    check_distance(signal_type, values, seed=seed)
