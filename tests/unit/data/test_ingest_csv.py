"""CSV ingest: good files read with the right types; every kind of bad file is a clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.data.ingest import read_source
from loopline.errors import (
    DataArgumentError,
    DuplicateColumnsError,
    EmptySourceError,
    EncodingError,
    FormatMismatchError,
    IngestError,
    MalformedRowsError,
    MixedTypesError,
    SourceNotFoundError,
)


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
        MixedTypesError,
        DuplicateColumnsError,
    ):
        assert issubclass(cls, IngestError)
