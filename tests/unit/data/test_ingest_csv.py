"""CSV ingest: good files read with the right types; every kind of bad file is a clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from loopline.data import csvfile
from loopline.data.content import normalise_table, table_digest
from loopline.data.errors import (
    DataArgumentError,
    DuplicateColumnsError,
    EmptySourceError,
    EncodingError,
    FormatMismatchError,
    IngestError,
    MalformedRowsError,
    MixedTypesError,
    SourceNotFoundError,
    UnterminatedQuoteError,
)
from loopline.data.ingest import read_source


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def numbers_csv(rows: int = 30, bad: dict[int, str] | None = None) -> str:
    lines = ["id,amount,city"]
    for i in range(rows):
        amount = (bad or {}).get(i, f"{i * 1.5}")
        lines.append(f"{i},{amount},{['Oslo', 'Lima', 'Pune'][i % 3]}")
    return "\n".join(lines) + "\n"


def test_a_good_csv_reads_with_canonical_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ok.csv",
        "id,score,name,active,day\n"
        '1,0.5,"Smith, J",true,2024-01-01\n'
        "2,,Lee,false,2024-01-02\n"
        '3,2.5,"multi\nline",true,\n',
    )
    got = read_source(path)
    t = got.table
    assert got.format == "csv"
    assert got.source == str(path.resolve())
    assert t.column_names == ["id", "score", "name", "active", "day"]
    assert [str(ty) for ty in t.schema.types] == [
        "int64",
        "double",
        "large_string",
        "bool",
        "date32[day]",
    ]
    assert t.column("score").to_pylist() == [0.5, None, 2.5]
    assert t.column("name").to_pylist() == ["Smith, J", "Lee", "multi\nline"]


def test_tsv_semicolon_and_compressed_files(tmp_path: Path) -> None:
    tsv = read_source(write(tmp_path, "a.tsv", "a\tb\n1\tx\n"))
    assert tsv.table.column_names == ["a", "b"]
    semi = read_source(write(tmp_path, "b.csv", "a;b\n1;x\n2;y\n"))
    assert semi.table.column_names == ["a", "b"]
    assert any("';'" in n for n in semi.notes)
    gz = read_source(write(tmp_path, "c.csv.gz", gzip.compress(b"a,b\n1,2\n")))
    assert gz.table.column("b").to_pylist() == [2]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError) as info:
        read_source(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)


def test_a_folder_is_not_a_source(tmp_path: Path) -> None:
    with pytest.raises(DataArgumentError, match="is a folder"):
        read_source(tmp_path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"  \n\n ", "only whitespace"),
        (b"a,b,c\n", "has a header (a, b, c) but no data rows"),
    ],
)
def test_empty_files(tmp_path: Path, content: bytes, expected: str) -> None:
    with pytest.raises(EmptySourceError) as info:
        read_source(write(tmp_path, "empty.csv", content))
    assert expected in str(info.value)
    assert str(tmp_path / "empty.csv") in str(info.value)


def test_malformed_lines_are_listed_with_line_numbers(tmp_path: Path) -> None:
    text = "a,b,c\n1,2,3\n4,5\n\n6,7,8\n9,10,11,12\n" + "1,2,3\n" * 20 + "x,y\n"
    with pytest.raises(MalformedRowsError) as info:
        read_source(write(tmp_path, "bad.csv", text))
    err = info.value
    assert err.count == 3
    assert err.expected == 3
    assert [(line, fields) for line, fields, _ in err.lines] == [(3, 2), (6, 4), (27, 2)]
    assert err.line == 3
    msg = str(err)
    assert "line 3: 2 fields ('4,5')" in msg
    assert "line 6: 4 fields" in msg
    assert "header's 3" in msg


def test_malformed_line_numbers_follow_quoted_newlines(tmp_path: Path) -> None:
    text = 'a,b\n"one\ntwo",1\n3\n'
    with pytest.raises(MalformedRowsError) as info:
        read_source(write(tmp_path, "q.csv", text))
    assert info.value.lines[0][0] == 4


def test_a_number_column_with_text_names_the_rows_and_values(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", numbers_csv(40, bad={17: "abc", 30: "n.a."}))
    with pytest.raises(MixedTypesError) as info:
        read_source(path)
    err = info.value
    assert err.column == "amount"
    assert err.expected == "numbers"
    assert err.count == 2
    assert err.examples == [(17, 19, "abc"), (30, 32, "n.a.")]
    assert (err.row, err.line, err.value) == (17, 19, "abc")
    msg = str(err)
    assert "column 'amount' holds numbers, but 2 of its 40 values are not numbers" in msg
    assert "line 19 (row 17): 'abc'" in msg
    assert "--dtype amount=string" in msg


def test_a_text_column_stays_text_and_forced_dtypes_are_checked(tmp_path: Path) -> None:
    # Mostly text: numbers are valid text, so the column is text.
    t = read_source(write(tmp_path, "t.csv", "code\nA1\nB2\n42\nC3\n")).table
    assert t.column("code").to_pylist() == ["A1", "B2", "42", "C3"]
    # Mostly numbers, declared text: read as text.
    path = write(tmp_path, "m.csv", numbers_csv(10, bad={3: "abc"}))
    t = read_source(path, dtypes={"amount": "string"}).table
    assert t.column("amount").to_pylist()[3] == "abc"
    # Declared integer, holding a float and text: refused with the values.
    path = write(tmp_path, "i.csv", "n\n1\n2\n2.5\nx\n")
    with pytest.raises(MixedTypesError) as info:
        read_source(path, dtypes={"n": "integer"})
    assert [v for _, _, v in info.value.examples] == ["2.5", "x"]
    ok = read_source(write(tmp_path, "f.csv", "n\n1\n2\n"), dtypes={"n": "float"}).table
    assert str(ok.column("n").type) == "double"
    with pytest.raises(MixedTypesError, match="not dates"):  # the time would be lost
        read_source(write(tmp_path, "d.csv", "d\n2024-01-01T10:30\n"), dtypes={"d": "date"})
    with pytest.raises(DataArgumentError, match="no column 'zz'"):
        read_source(write(tmp_path, "g.csv", "n\n1\n"), dtypes={"zz": "float"})
    with pytest.raises(DataArgumentError, match="'complex'"):
        read_source(write(tmp_path, "h.csv", "n\n1\n"), dtypes={"n": "complex"})


def test_null_markers_are_missing_values(tmp_path: Path) -> None:
    t = read_source(write(tmp_path, "n.csv", "a,b\n1,x\nNA,\n3,null\n")).table
    assert t.column("a").to_pylist() == [1, None, 3]
    assert t.column("b").to_pylist() == ["x", None, None]
    custom = read_source(write(tmp_path, "c.csv", "a\n1\n-\n3\n"), null_values=["-"]).table
    assert custom.column("a").to_pylist() == [1, None, 3]


def test_duplicate_and_empty_column_names(tmp_path: Path) -> None:
    with pytest.raises(DuplicateColumnsError) as info:
        read_source(write(tmp_path, "d.csv", "a,b,a\n1,2,3\n"))
    assert info.value.names == ["a"]
    assert "'a' at positions 1, 3" in str(info.value)
    with pytest.raises(DuplicateColumnsError, match="column 1 has no name"):
        read_source(write(tmp_path, "e.csv", ",b\n1,2\n"))


def test_a_parquet_file_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "really.csv"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    with pytest.raises(FormatMismatchError) as info:
        read_source(path)
    assert "is a Parquet file, not CSV" in str(info.value)
    assert "name it .parquet" in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a,b\n1,\x002\n", "NUL byte at byte offset 6 (line 2)"),
        (b"PK\x03\x04rest-of-zip", "zip archive"),
        (b"\x1f\x8b\x08\x00gzip", "gzip-compressed"),
    ],
)
def test_binary_content_in_a_csv(tmp_path: Path, content: bytes, expected: str) -> None:
    with pytest.raises(FormatMismatchError) as info:
        read_source(write(tmp_path, "bin.csv", content))
    assert expected in str(info.value)


def test_a_csv_named_parquet(tmp_path: Path) -> None:
    with pytest.raises(FormatMismatchError) as info:
        read_source(write(tmp_path, "data.parquet", "a,b\n1,2\n"))
    assert "not a Parquet file" in str(info.value)
    assert "looks like text" in str(info.value)
    truncated = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(FormatMismatchError, match="truncated"):
        read_source(truncated)


def test_non_utf8_text_names_line_column_and_offset(tmp_path: Path) -> None:
    text = "name,city\nAnna,Oslo\nJos\xe9,M\xe1laga\n".encode("latin-1")
    path = write(tmp_path, "latin.csv", text)
    with pytest.raises(EncodingError) as info:
        read_source(path)
    err = info.value
    assert err.line == 3
    assert err.byte_offset == text.index(b"\xe9")
    assert err.column == "name"
    assert err.value == "0xe9"
    assert "--encoding latin-1" in str(err)
    t = read_source(path, encoding="latin-1").table
    assert t.column("city").to_pylist() == ["Oslo", "Málaga"]


def test_non_utf8_in_the_header_and_utf16(tmp_path: Path) -> None:
    with pytest.raises(EncodingError) as info:
        read_source(write(tmp_path, "h.csv", b"n\xe4me,b\n1,2\n"))
    assert info.value.line == 1
    assert info.value.byte_offset == 1
    with pytest.raises(EncodingError, match="UTF-16"):
        read_source(write(tmp_path, "u.csv", "a,b\n1,2\n".encode("utf-16")))


def test_a_utf8_bom_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    t = read_source(write(tmp_path, "bom.csv", b"\xef\xbb\xbfa,b\n1,2\n")).table
    assert t.column_names == ["a", "b"]


def test_unknown_extension_is_sniffed(tmp_path: Path) -> None:
    got = read_source(write(tmp_path, "data.dat", "a,b\n1,2\n"))
    assert got.format == "csv"
    assert any("no known file extension" in n for n in got.notes)
    pq.write_table(pa.table({"a": [1]}), tmp_path / "blob")
    assert read_source(tmp_path / "blob").format == "parquet"


def test_ingest_errors_share_one_family() -> None:
    for cls in (
        SourceNotFoundError,
        EmptySourceError,
        FormatMismatchError,
        EncodingError,
        MalformedRowsError,
        UnterminatedQuoteError,
        MixedTypesError,
        DuplicateColumnsError,
    ):
        assert issubclass(cls, IngestError)


# -- quotes ----------------------------------------------------------------------------------


def test_a_quote_never_closed_is_refused_with_the_line_it_opened_on(tmp_path: Path) -> None:
    # pyarrow alone reads this as one row whose "b" holds the rest of the file.
    path = write(tmp_path, "q.csv", 'a,b\n1,"oops\n2,3\n4,5\n')
    with pytest.raises(UnterminatedQuoteError) as info:
        read_source(path)
    err = info.value
    assert (err.line, err.byte_offset, err.unterminated) == (2, 6, True)
    assert "quote on line 2 (byte offset 6) that opens a field and is never closed" in str(err)
    assert str(path.resolve()) in str(err)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('a,b\n1,"2', 2),  # the value would even be a number
        ('a,b\r\n1,x\r\n2,"y\r\n3,z\r\n', 3),
        ('a,b\n1,"x ""quoted"" \n2,3\n', 2),  # escaped quotes do not close it
        ('a,b\n1,x"y\n"2,3\n4,5\n', 3),  # a quote inside a field is only a character
        ('"a,b\n1,2\n', 1),
    ],
)
def test_unclosed_quotes_anywhere(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(UnterminatedQuoteError) as info:
        read_source(write(tmp_path, "q.csv", text))
    assert info.value.line == line


def test_a_quoted_field_longer_than_the_limit(tmp_path: Path) -> None:
    # An opening quote that a later one closes: the field swallows lines 2 to 40.
    text = 'id,note\n1,"forgot to close\n' + "2,fine\n" * 38 + '3,"x"\n4,y\n'
    path = write(tmp_path, "long.csv", text)
    with pytest.raises(UnterminatedQuoteError) as info:
        read_source(path, max_field_bytes=100)
    err = info.value
    assert (err.line, err.unterminated) == (2, False)
    assert "opens on line 2" in str(err)
    assert "more than 100 bytes" in str(err)
    assert "max_field_bytes" in (err.hint or "")
    # Under the default limit (1 MiB) the same file reads as pyarrow reads it: rows 2 to
    # 40 become part of the first row's note.
    assert read_source(path).table.column("id").to_pylist() == [1, 4]
    with pytest.raises(DataArgumentError, match="max_field_bytes"):
        read_source(path, max_field_bytes=0)


def test_the_default_limit_refuses_a_megabyte_field_and_can_be_raised(tmp_path: Path) -> None:
    big = "x" * (csvfile.DEFAULT_MAX_FIELD_BYTES + 10)
    path = write(tmp_path, "big.csv", f'a,b\n1,"{big}"\n2,y\n')
    with pytest.raises(UnterminatedQuoteError, match="more than 1,048,576 bytes"):
        read_source(path)
    table = read_source(path, max_field_bytes=2 * len(big)).table
    assert table.column("b").to_pylist() == [big, "y"]


def test_lines_longer_than_a_block_are_read(tmp_path: Path, small_blocks: None) -> None:
    long = "y" * 50_000  # blocks are 4 KiB here
    rows = [
        f'{k},"{long if k == 7 else f"text {k}"}",{long if k == 9 else "word"}' for k in range(20)
    ]
    t = read_source(write(tmp_path, "long.csv", "a,b,c\n" + "\n".join(rows) + "\n")).table
    assert t.column("b").to_pylist()[7] == long
    assert t.column("c").to_pylist()[9] == long
    assert t.column("a").to_pylist() == list(range(20))


def test_quoted_fields_that_close_still_read(tmp_path: Path) -> None:
    text = (
        'id,text,size\r\n1,"he said ""hi""\r\nand left",3\r\n2,5" pipe,4\r\n3,"",5\r\n4,"a,b",6\r\n'
    )
    t = read_source(write(tmp_path, "ok.csv", text)).table
    assert t.column("text").to_pylist() == ['he said "hi"\r\nand left', '5" pipe', None, "a,b"]
    assert t.column("size").to_pylist() == [3, 4, 5, 6]


def test_an_unclosed_quote_in_compressed_or_latin1_text(tmp_path: Path) -> None:
    text = 'a,b\n1,x\n2,"never\n3,y\n'
    with pytest.raises(UnterminatedQuoteError) as info:
        read_source(write(tmp_path, "q.csv.gz", gzip.compress(text.encode())))
    assert info.value.line == 3
    latin = write(tmp_path, "l.csv", 'a,b\nJos\xe9,"M\xe1laga\n'.encode("latin-1"))
    with pytest.raises(UnterminatedQuoteError) as info:
        read_source(latin, encoding="latin-1")
    assert info.value.line == 2
    utf16 = write(tmp_path, "u.csv", 'a,b\n1,"x\n'.encode("utf-16"))
    with pytest.raises(UnterminatedQuoteError) as info:
        read_source(utf16, encoding="utf-16")
    assert (info.value.line, info.value.byte_offset) == (2, None)


# -- files read in blocks ----------------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 4 KiB, so that a small file spans many blocks."""
    monkeypatch.setattr(csvfile, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(csvfile, "COUNT_ROWS", 1000)


def whole_file(path: Path) -> pa.Table:
    """The table pyarrow's whole-file reader makes (the types every version was read with)."""
    table = pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
    )
    return normalise_table(table)[0]


def test_types_come_from_the_whole_file_not_the_first_block(
    tmp_path: Path, small_blocks: None
) -> None:
    rows = 3000
    late = rows - 5
    lines = ["ints,late_float,late_value,bits,when,stamp,code"]
    for k in range(rows):
        lines.append(
            ",".join(
                [
                    str(k),
                    "2.5" if k == late else str(k),
                    "7" if k == late else "",
                    "true" if k == late else str(k % 2),
                    "2024-01-02 10:30:00" if k == late else "2024-01-02",
                    f"2024-01-02T10:00:00.{k % 10}",
                    "0x1F" if k == late else str(k),
                ]
            )
        )
    path = write(tmp_path, "late.csv", "\n".join(lines) + "\n")
    got = read_source(path).table
    want = whole_file(path)
    assert got.schema == want.schema
    assert [str(t) for t in got.schema.types] == [
        "int64",
        "double",
        "int64",
        "bool",
        "timestamp[us]",
        "timestamp[us]",
        "int64",
    ]
    assert table_digest(got) == table_digest(want)


def test_sub_microsecond_timestamps_late_in_the_file_keep_nanoseconds(
    tmp_path: Path, small_blocks: None
) -> None:
    lines = ["at"] + [f"2024-01-02T10:00:00.{k % 10}" for k in range(2000)]
    lines.append("2024-01-02T10:00:00.123456789")
    path = write(tmp_path, "ns.csv", "\n".join(lines) + "\n")
    got = read_source(path).table
    assert str(got.schema.field("at").type) == "timestamp[ns]"
    assert table_digest(got) == table_digest(whole_file(path))


def test_a_late_text_value_in_a_number_column_names_its_line(
    tmp_path: Path, small_blocks: None
) -> None:
    path = write(tmp_path, "m.csv", numbers_csv(3000, bad={2990: "n.a.", 2995: "abc"}))
    with pytest.raises(MixedTypesError) as info:
        read_source(path)
    err = info.value
    assert err.column == "amount"
    assert err.count == 2
    assert err.examples == [(2990, 2992, "n.a."), (2995, 2997, "abc")]
    assert "2 of its 3,000 values are not numbers" in str(err)


def test_late_problems_are_found_over_the_whole_file(tmp_path: Path, small_blocks: None) -> None:
    text = numbers_csv(3000) + "1,2\n" + numbers_csv(10).split("\n", 1)[1]
    with pytest.raises(MalformedRowsError) as info:
        read_source(write(tmp_path, "bad.csv", text))
    assert info.value.lines[0][:2] == (3002, 2)
    forced = numbers_csv(3000, bad={2999: "x"})
    with pytest.raises(MixedTypesError) as info:
        read_source(write(tmp_path, "forced.csv", forced), dtypes={"amount": "float"})
    assert info.value.examples == [(2999, 3001, "x")]
    assert "is read as float, but 1 of its 3,000 values are not numbers" in str(info.value)
    latin = numbers_csv(3000).replace("2999,", "2999,Jos\xe9").encode("latin-1")
    with pytest.raises(EncodingError) as enc:
        read_source(write(tmp_path, "enc.csv", latin))
    assert enc.value.line == 3001
