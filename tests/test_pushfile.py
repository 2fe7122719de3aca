"""insider_webpush.pushfile: every kind of source read the same way, every bad input named."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insider_webpush import Target, ValidationError, WebPush
from insider_webpush.models import PUSH_LINE_MAX
from insider_webpush.pushfile import (
    CSV_COLUMNS,
    PushFileError,
    read_lines,
    read_pushes,
    write_pushes,
)

GOOD: dict[str, Any] = {
    "title": "Spring sale",
    "description": "Everything -20 %",
    "image": "https://example.com/i.png",
    "link": "https://example.com/sale",
    "ttl": 3600,
    "partner_id": "10000001",
}
LINE = json.dumps(GOOD)
PUSH = WebPush(
    title="Spring sale",
    description="Everything -20 %",
    image="https://example.com/i.png",
    link="https://example.com/sale",
    ttl=3600,
    partner_id="10000001",
)
CSV_TEXT = (
    "title,description,image,link,ttl,partner_id,target_attribute,target_values,include_unengage\n"
    "Spring sale,Everything -20 %,https://example.com/i.png,https://example.com/sale,3600,"
    "10000001,d_city,Istanbul|Ankara,yes\n"
)
CSV_PUSH = WebPush(
    title="Spring sale",
    description="Everything -20 %",
    image="https://example.com/i.png",
    link="https://example.com/sale",
    ttl=3600,
    partner_id="10000001",
    target=Target("d_city", ["Istanbul", "Ankara"]),
    include_unengaged=True,
)


def summary(source: Any, **kwargs: Any) -> list[tuple[int, Any, str | None]]:
    return [
        (r.line, r.item, str(r.error) if r.error else None) for r in read_lines(source, **kwargs)
    ]


# -- every kind of source, decoded the same way ------------------------------------------------

ENCODINGS = {
    "plain": b"",
    "bom": b"\xef\xbb\xbf",
}
ENDINGS = {"lf": b"\n", "crlf": b"\r\n"}


def sources(tmp_path: Path, data: bytes, suffix: str) -> dict[str, Any]:
    path = tmp_path / f"pushes{suffix}"
    path.write_bytes(data)
    return {
        "path": str(path),
        "pathlike": path,
        "binary stream": io.BytesIO(data),
        "text stream": open(path, encoding="utf-8-sig", newline=""),
    }


@pytest.mark.parametrize("bom", ENCODINGS)
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("suffix", ["", ".jsonl", ".txt"])
def test_jsonl_reads_the_same_from_every_source(
    tmp_path: Path, bom: str, ending: str, suffix: str
) -> None:
    eol = ENDINGS[ending]
    data = ENCODINGS[bom] + LINE.encode() + eol + eol + LINE.encode() + eol
    for kind, source in sources(tmp_path, data, suffix).items():
        reader = read_lines(source)
        assert [(r.line, r.item) for r in reader] == [(1, PUSH), (3, PUSH)], kind
        assert reader.format == "jsonl"
        if hasattr(source, "close"):
            source.close()


@pytest.mark.parametrize("bom", ENCODINGS)
@pytest.mark.parametrize("ending", ENDINGS)
def test_csv_reads_the_same_from_every_source(tmp_path: Path, bom: str, ending: str) -> None:
    data = ENCODINGS[bom] + CSV_TEXT.replace("\n", ENDINGS[ending].decode()).encode()
    for suffix in ("", ".csv"):
        for kind, source in sources(tmp_path, data, suffix).items():
            assert summary(source) == [(2, CSV_PUSH, None)], (kind, suffix)
            if hasattr(source, "close"):
                source.close()


@pytest.mark.parametrize("bom", ENCODINGS)
def test_stdin_is_read_as_bytes_so_a_bom_never_changes_the_format(
    monkeypatch: pytest.MonkeyPatch, bom: str
) -> None:
    # Before: a BOM before a JSON line on stdin made the sniffing pick CSV and read nothing.
    data = ENCODINGS[bom] + LINE.encode() + b"\r\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="latin-1"))
    assert list(read_pushes("-")) == [PUSH]


def test_a_json_array_piped_in_or_without_a_suffix_is_read_as_an_array(tmp_path: Path) -> None:
    pretty = json.dumps([GOOD, {**GOOD, "campaign_id": 42}], indent=2)
    for source in (io.BytesIO(pretty.encode()), io.StringIO(pretty)):
        reader = read_lines(source)
        records = list(reader)
        assert reader.format == "json"
        # Each element is numbered by the line it starts on.
        assert [(r.line, r.item) for r in records] == [(2, PUSH), (10, (42, PUSH))]
    path = tmp_path / "pushes.json"
    path.write_text(pretty)
    assert list(read_pushes(path)) == [PUSH, (42, PUSH)]
    path.write_text(LINE + "\n")  # .json may hold JSONL too: the first character tells
    assert list(read_pushes(path)) == [PUSH]


def test_an_array_is_read_one_element_at_a_time() -> None:
    # 20,000 elements: the reader holds one, not the array.
    count = 20_000

    def chunks() -> bytes:
        return ("[" + ",\n".join([LINE] * count) + "]").encode()

    data = chunks()
    tracemalloc.start()
    try:
        seen = sum(1 for _ in read_pushes(io.BytesIO(data)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < len(data) / 4, peak


# -- the format, or a clear error -------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"hello world\n", b"name,email\nx,y\n", b"\x00\x01\x02", b"1,2,3\n"],
)
def test_an_input_of_no_known_format_is_an_error_not_an_empty_read(data: bytes) -> None:
    with pytest.raises(PushFileError, match="can't tell its format") as caught:
        list(read_lines(io.BytesIO(data)))
    assert caught.value.field == "file"
    assert caught.value.line is None


@pytest.mark.parametrize("data", [b"", b"  \n\r\n", b"\xef\xbb\xbf", b"title,description\n"])
def test_an_empty_file_or_a_header_only_csv_has_no_records(data: bytes) -> None:
    assert summary(io.BytesIO(data)) == []


def test_an_explicit_format_wins_and_a_bad_one_is_named() -> None:
    with pytest.raises(PushFileError, match=r"format: must be one of jsonl, csv, json"):
        read_lines(io.StringIO(LINE), format="yaml")  # type: ignore[arg-type]
    with pytest.raises(PushFileError, match="is not a JSON array"):
        list(read_lines(io.StringIO(LINE), format="json"))
    [record] = read_lines(io.StringIO("foo,title\n"), format="csv")
    assert record.error is not None
    assert (record.line, record.error.field) == (1, "foo")
    assert "is not a column of a push file" in str(record.error)


def test_a_missing_file_or_an_unknown_encoding_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(PushFileError, match=r"nope.jsonl: can't be read: No such file"):
        list(read_lines(tmp_path / "nope.jsonl"))
    with pytest.raises(PushFileError, match="unknown encoding 'klingon'"):
        list(read_lines(io.BytesIO(b""), encoding="klingon"))


# -- every bad line named, and the reading goes on ----------------------------------------------


def test_bad_lines_are_named_by_number_and_field_and_the_rest_is_read() -> None:
    lines = [
        LINE,
        "{not json",
        json.dumps({**GOOD, "title": "x" * 101}),
        "[1, 2]",
        json.dumps({**GOOD, "campaign_id": "abc"}),
        json.dumps({**GOOD, "campaign_id": "7"}),
        json.dumps({**GOOD, "colour": "red"}),
    ]
    records = list(read_lines(io.StringIO("\n".join(lines))))
    assert [r.line for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert records[0].item == PUSH
    assert records[5].item == (7, PUSH)
    errors = {r.line: r.error for r in records if r.error is not None}
    assert {n: e.field for n, e in errors.items()} == {
        2: "line",
        3: "title",
        4: "push",
        5: "campaign_id",
        7: "colour",
    }
    assert str(errors[2]).startswith("line 2: is not valid JSON: ")
    assert "100" in str(errors[3])  # the limit is named
    assert all(e.line == n for n, e in errors.items())


def test_read_pushes_raises_at_the_first_bad_line_with_its_number_and_field() -> None:
    text = "\n".join([LINE, LINE, json.dumps({**GOOD, "ttl": -1}), LINE])
    pushes = read_pushes(io.StringIO(text))
    assert [next(pushes), next(pushes)] == [PUSH, PUSH]
    with pytest.raises(PushFileError) as caught:
        next(pushes)
    assert (caught.value.line, caught.value.field) == (3, "ttl")
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, ValueError)


def test_deeply_nested_json_is_an_error_not_a_recursion_error() -> None:
    deep = "[" * 200_000
    assert summary(io.StringIO('{"title": ' + deep + "\n" + LINE)) == [
        (1, None, "line 1: is JSON nested too deeply"),
        (2, PUSH, None),
    ]
    [(line, item, error)] = summary(io.StringIO(deep))
    assert (line, item) == (1, None)
    assert error is not None
    assert "nested too deeply" in error


def test_names_from_the_file_are_shown_escaped() -> None:
    # An ANSI escape in a field name must not reach the terminal; a lone surrogate must not
    # break printing.
    text = json.dumps({**GOOD, "\x1b[31mred": 1}) + "\n" + json.dumps({**GOOD, "\ud800": 1})
    first, second = read_lines(io.StringIO(text))
    assert first.error is not None
    assert second.error is not None
    assert first.error.field == "\\x1b[31mred"
    assert "\x1b" not in str(first.error)
    assert second.error.field == "\\ud800"
    str(second.error).encode("utf-8")  # no lone surrogate left


def test_an_undecodable_byte_is_named_on_its_own_line() -> None:
    data = LINE.encode() + b"\n" + b'{"title": "\xff"}\n' + LINE.encode() + b"\n"
    assert summary(io.BytesIO(data)) == [
        (1, PUSH, None),
        (2, None, "line 2: holds a byte that is not utf-8 text: 0xff"),
        (3, PUSH, None),
    ]
    records = summary(io.BytesIO(CSV_TEXT.encode() + b"\xfe,d,i,l,1,p,,,\n"))
    assert records[1] == (3, None, "line 3: holds a byte that is not utf-8 text: 0xfe")


def test_a_strict_text_stream_that_fails_to_decode_is_a_push_file_error() -> None:
    # The caller's stream decodes in chunks, so the error comes where its reading stopped;
    # what matters is that it is a PushFileError naming the encoding, not a UnicodeDecodeError.
    stream = io.TextIOWrapper(io.BytesIO(LINE.encode() + b"\n\xff\xfe\n"), encoding="utf-8")
    with pytest.raises(PushFileError, match=r"line 1: is not valid utf-8 text \(invalid start"):
        list(read_lines(stream))


def test_a_fifty_megabyte_junk_line_is_reported_on_its_line_with_bounded_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "junk.jsonl"
    with open(path, "wb") as handle:
        handle.write(LINE.encode() + b"\n")
        handle.write(b"x" * 50_000_000 + b"\n")
        handle.write(LINE.encode() + b"\n")
    tracemalloc.start()
    try:
        records = summary(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert records == [
        (1, PUSH, None),
        (2, None, f"{path}, line 2: is longer than {PUSH_LINE_MAX} characters"),
        (3, PUSH, None),
    ]
    assert peak < 8 * PUSH_LINE_MAX, peak


def test_broken_csv_rows_are_named_and_a_long_csv_line_ends_the_read() -> None:
    text = CSV_TEXT + "a,b,c,d,e,f,g,h,i,j\n" + CSV_TEXT.splitlines()[1] + "\n"
    records = summary(io.StringIO(text))
    assert records[1] == (3, None, "line 3: has 10 cells; the header has 9 columns")
    assert records[2] == (4, CSV_PUSH, None)
    long_row = CSV_TEXT + "y" * (PUSH_LINE_MAX + 10) + "\n" + CSV_TEXT.splitlines()[1] + "\n"
    assert summary(io.StringIO(long_row))[1:] == [
        (3, None, f"line 3: is longer than {PUSH_LINE_MAX} characters")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[" + LINE + "," + LINE + "] trailing",
            "line 1: has text after the end of the JSON array",
        ),
        ("[" + LINE + ",]", "line 1: is not valid JSON: a value expected after ','"),
        ("[\n" + LINE + "\n", "line 2: the JSON array is not closed: ']' is missing"),
        ("[" + LINE + " " + LINE + "]", "line 1: is not valid JSON: ',' or ']' expected"),
        ("[\n" + LINE + ",\n{oops}\n]", "line 3: is not valid JSON: Expecting property name"),
    ],
)
def test_a_broken_json_array_is_named_where_it_breaks(text: str, message: str) -> None:
    records = summary(io.StringIO(text))
    assert records[0] == (records[0][0], PUSH, None)
    assert records[-1][2] is not None
    assert records[-1][2].startswith(message)


# -- writing back -------------------------------------------------------------------------------

pushes = st.builds(
    WebPush,
    title=st.text(min_size=1, max_size=20).filter(str.strip),
    description=st.text(min_size=1, max_size=20).filter(str.strip),
    image=st.just("https://example.com/i.png"),
    link=st.sampled_from(["https://example.com", "http://example.com/a?b=c,d"]),
    ttl=st.integers(1, 3600),
    include_unengaged=st.sampled_from([None, True, False]),
    language=st.sampled_from([None, "tr_TR"]),
    target=st.sampled_from([None, Target("d_city", ["Istanbul", "Izmir, TR"])]),
    partner_id=st.sampled_from([None, "10000001"]),
)
items = st.one_of(pushes, st.tuples(st.integers(1, 2**63 - 1), pushes))


@settings(max_examples=60, deadline=None)
@given(st.lists(items, max_size=5), st.sampled_from(["jsonl", "csv", "json"]))
def test_write_then_read_gives_the_same_items(batch: list[Any], fmt: Any) -> None:
    out = io.StringIO()
    try:
        assert write_pushes(batch, out, format=fmt) == len(batch)
    except (PushFileError, ValidationError):
        return  # e.g. a title that is blank once CSV strips nothing... never silently wrong
    assert list(read_pushes(io.StringIO(out.getvalue()), format=fmt)) == batch


def test_write_pushes_to_a_path_takes_its_suffix(tmp_path: Path) -> None:
    for suffix, first in ((".csv", ",".join(CSV_COLUMNS)), (".json", "["), (".jsonl", "{")):
        path = tmp_path / f"out{suffix}"
        assert write_pushes([PUSH, (5, PUSH)], path) == 2
        assert path.read_text(encoding="utf-8").startswith(first)
        assert list(read_pushes(path)) == [PUSH, (5, PUSH)]


def test_write_pushes_refuses_what_it_could_not_read_back() -> None:
    with pytest.raises(PushFileError, match=r"target.values: item 1: a value holds '\|'"):
        write_pushes(
            [WebPush(**{**GOOD, "target": Target("d_city", ["a|b"])})], io.StringIO(), format="csv"
        )
    with pytest.raises(PushFileError, match="item 2 is not a WebPush"):
        write_pushes([PUSH, "nope"], io.StringIO())  # type: ignore[list-item]


def test_what_a_hostile_file_holds_is_a_line_error_in_plain_words() -> None:
    # Found by an attacker: each used to be a traceback, a Python message or a mangled name.
    records = summary(
        io.StringIO('{"ttl": ' + "9" * 5000 + "}\n" + '{"\\u001b": "\x1b"}\n' + LINE + "\n")
    )
    assert records[0] == (1, None, "line 1: is not valid JSON: a number too long")
    assert records[1][2] == "line 2: is not valid JSON: Invalid control character (column 13)"
    assert records[2] == (3, PUSH, None)
    [array_error] = summary(io.StringIO("[" + "9" * 5000 + "]"))
    assert array_error[2] == "line 1: is not valid JSON: a number too long"
    header = io.BytesIO(b"tit\xe9le,description\n")
    [(line, _, error)] = summary(header, format="csv")
    assert (line, error) == (
        1,
        "line 1: holds a byte that is not text in the file's encoding: 0xe9",
    )
    long_name = io.StringIO("x" * 600 + ",title\n")
    [(_, _, error)] = summary(long_name, format="csv")
    assert error is not None
    assert len(error) < 300
    maybe = CSV_TEXT.replace(",yes\n", ",maybe\n")
    assert summary(io.StringIO(maybe))[0][2] == (
        "line 2: include_unengage: must be true or false (yes/no, 1/0)"
    )


def test_write_pushes_refuses_a_campaign_id_read_pushes_would_refuse() -> None:
    with pytest.raises(PushFileError, match=r"campaign_id: item 1: must be"):
        write_pushes([(2**63, PUSH)], io.StringIO())
    with pytest.raises(PushFileError, match="item 1 is not a WebPush"):
        write_pushes([1], io.StringIO())  # type: ignore[list-item]
    out = io.StringIO()
    write_pushes([PUSH], out)
    assert json.loads(out.getvalue())["ttl"] == 3600  # a number, as a file gives it


def test_csv_cells_are_trimmed_and_a_semicolon_file_is_named_as_such() -> None:
    spaced = "title, description, image, link, ttl\nSale, d, https://e.com/i, https://e.com, 3600\n"
    [(_, item, error)] = summary(io.StringIO(spaced))
    assert error is None
    assert isinstance(item, WebPush)
    assert (item.title, item.ttl) == ("Sale", 3600)
    [(_, _, error)] = summary(io.StringIO("title;description\n"), format="csv")
    assert (
        error
        == "line 1: title;description: is not a column: cells are separated by commas, not ';'"
    )
