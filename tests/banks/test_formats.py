"""Hash-list formats: parsing, errors with line numbers, round trips."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safestream.banks.formats import (
    FORMATS,
    HashRecord,
    LineError,
    ParsedLine,
    detect_format,
    get_format,
)
from safestream.errors import InputError

PDQ = "f" * 32 + "0" * 32
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def parse(fmt: str, text: str) -> list[ParsedLine | LineError]:
    return list(get_format(fmt).parse(io.StringIO(text)))


def test_te_format_parses_and_canonicalises() -> None:
    items = parse("te", f"# comment\n\npdq {PDQ.upper()}\nmd5 {MD5}\n")
    assert [type(i) for i in items] == [ParsedLine, ParsedLine]
    assert isinstance(items[0], ParsedLine)
    assert items[0].line_number == 3
    assert items[0].record == HashRecord("pdq", PDQ)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (f"pdq {PDQ[:-1]}", "64 hex characters, got 63"),
        (f"pdq {PDQ[:-1]}g", "not hexadecimal"),
        (f"photo {PDQ}", "unknown signal type 'photo'"),
        (f"pdq {PDQ} extra", "got 3 field(s)"),
        ("pdq", "got 1 field(s)"),
        ("md5 " + "a" * 5000, "longer than 4096"),
    ],
)
def test_te_format_errors_name_the_line(line: str, fragment: str) -> None:
    items = parse("te", f"md5 {MD5}\n{line}\n")
    err = items[1]
    assert isinstance(err, LineError)
    assert err.line_number == 2
    assert fragment in err.reason
    assert str(err.to_error("list.txt")).startswith("list.txt:2: ")


def test_plain_md5_list_accepts_md5sum_output() -> None:
    items = parse("md5", f"{MD5}  some/file.jpg\n{MD5.upper()}\n")
    assert all(isinstance(i, ParsedLine) for i in items)
    assert {i.record.value for i in items if isinstance(i, ParsedLine)} == {MD5}


def test_plain_sha1_list_rejects_md5() -> None:
    (item,) = parse("sha1", MD5 + "\n")
    assert isinstance(item, LineError)
    assert "40 hex characters, got 32" in item.reason


def test_csv_with_header_and_metadata() -> None:
    text = f"signal_type,value,external_id,source,labels\npdq,{PDQ},ext-1,NCMEC,a;b\nmd5,{MD5},,,\n"
    items = parse("csv", text)
    assert [i.line_number for i in items] == [2, 3]
    first = items[0]
    assert isinstance(first, ParsedLine)
    assert first.record == HashRecord("pdq", PDQ, "ext-1", "NCMEC", ("a", "b"))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (f"type,value\npdq,{PDQ}\n", 1, "missing: signal_type"),
        (f"signal_type,value\npdq,{PDQ},x\n", 2, "expected 2 columns"),
        ("signal_type,value\npdq,zz\n", 2, "64 hex characters"),
        ("", 1, "CSV file is empty"),
        ('signal_type,value\n"pdq,' + PDQ + "\n", 2, "expected 2 columns"),
    ],
)
def test_csv_errors(text: str, line: int, fragment: str) -> None:
    errors = [i for i in parse("csv", text) if isinstance(i, LineError)]
    assert errors, "expected an error"
    assert errors[0].line_number == line
    assert fragment in errors[0].reason


def test_detect_format() -> None:
    assert detect_format(f"pdq {PDQ}\n") == "te"
    assert detect_format(f"# c\n{MD5}\n") == "md5"
    assert detect_format(SHA1) == "sha1"
    assert detect_format("whatever", "list.CSV") == "csv"
    assert detect_format(f"signal_type,value\npdq,{PDQ}") == "csv"
    with pytest.raises(InputError, match="PDQ list from a SHA-256"):
        detect_format(PDQ)
    with pytest.raises(InputError, match="cannot detect"):
        detect_format("")


def test_unknown_format() -> None:
    with pytest.raises(InputError, match="unknown hash-list format 'xml'"):
        get_format("xml")


hex_pdq = st.binary(min_size=32, max_size=32).map(bytes.hex)
labels = st.lists(st.text("abcxyz-_", min_size=1, max_size=8), max_size=3).map(tuple)


@given(
    st.lists(
        st.tuples(
            hex_pdq, st.one_of(st.none(), st.text("AZaz09-", min_size=1, max_size=10)), labels
        ),
        max_size=20,
    )
)
def test_csv_round_trip(rows: list[tuple[str, str | None, tuple[str, ...]]]) -> None:
    records = [HashRecord("pdq", v, ext, "src", lab) for v, ext, lab in rows]
    buf = io.StringIO()
    assert FORMATS["csv"].write(records, buf) == len(records)
    buf.seek(0)
    parsed = [i.record for i in FORMATS["csv"].parse(buf) if isinstance(i, ParsedLine)]
    assert parsed == records


@given(st.lists(hex_pdq, max_size=20))
def test_te_round_trip(values: list[str]) -> None:
    records = [HashRecord("pdq", v) for v in values]
    buf = io.StringIO()
    FORMATS["te"].write(records, buf)
    buf.seek(0)
    assert [i.record for i in FORMATS["te"].parse(buf) if isinstance(i, ParsedLine)] == records


@given(st.text(max_size=300))
def test_parsers_never_raise_on_arbitrary_text(text: str) -> None:
    for fmt in FORMATS.values():
        for item in fmt.parse(io.StringIO(text)):
            assert isinstance(item, ParsedLine | LineError)
