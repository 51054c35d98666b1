"""Every registered SignalType passes the conformance kit."""

from __future__ import annotations

import random

import pytest

from safestream.errors import SignalValueError
from safestream.signals import get_signal_type, signal_types
from safestream.signals.base import SignalType
from safestream.signals.conformance import (
    check_declaration,
    check_distance,
    check_parse,
    check_signal_type,
    random_value,
)

ALL = sorted(signal_types().items())


@pytest.mark.parametrize(("name", "signal_type"), ALL, ids=[n for n, _ in ALL])
def test_conformance_kit(name: str, signal_type: type[SignalType]) -> None:
    assert get_signal_type(name) is signal_type
    check_signal_type(signal_type)


@pytest.mark.parametrize(("name", "signal_type"), ALL, ids=[n for n, _ in ALL])
def test_conformance_parts_on_random_values(name: str, signal_type: type[SignalType]) -> None:
    rng = random.Random(name)
    values = [random_value(signal_type, rng) for _ in range(5)]
    check_declaration(signal_type)
    check_parse(signal_type, [v.upper() for v in values])
    check_distance(signal_type, values, seed=3)


def test_expected_types_are_registered() -> None:
    assert {"pdq", "md5", "sha1", "sha256"} <= set(signal_types())


def test_kit_catches_a_broken_plugin() -> None:
    class Asymmetric(SignalType):
        name = "broken"
        distance_metric = "hamming"
        hash_length_bits = 64
        default_threshold = 4

        @classmethod
        def distance(cls, a: str, b: str) -> int:
            return 0 if a == b else (1 if a < b else 2)

    with pytest.raises(AssertionError, match="symmetric"):
        check_signal_type(Asymmetric)


def test_unknown_type_is_a_signal_value_error() -> None:
    with pytest.raises(SignalValueError, match="known types"):
        get_signal_type("photodna-ish")
