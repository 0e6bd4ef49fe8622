"""Files and folders that fight back: hostile CSVs imported through the command line, and folders the
pipeline cannot write. Each is one clear line and an exit code, never a traceback; every good row of
a damaged file loads, every bad one is named by line; a rerun adds nothing."""

import gzip
import os

import pytest

from pipeline.cli import main

GOOD = "2016-10-07T20:{:02d}:00Z,post {}"


def _body(n=5):
    return "when,text\n" + "\n".join(GOOD.format(i, i) for i in range(n)) + "\n"


HOSTILE = {
    # name: (bytes, rows that must load, words the report must contain)
    "unterminated quote": ((_body(2) + '2016-10-07T20:10:00Z,"never closed\n' + _body(3).split("\n", 1)[1]
                            .replace(":0", ":3")).encode(), 5, ":4:"),
    "NUL bytes": (_body(3).encode().replace(b"post 1", b"po\x00st 1"), 3, None),
    "UTF-8 BOM and CRLF": (b"\xef\xbb\xbf" + _body(3).replace("\n", "\r\n").encode(), 3, None),
    "mixed newlines": (_body(4).replace("\n", "\r\n", 2).encode(), 4, None),
    "Latin-1 text": (_body(2).encode() + "2016-10-07T20:09:00Z,caf\xe9\n".encode("latin-1"), 2, ":4:"),
    "one enormous field": ((_body(2) + "2016-10-07T20:09:00Z," + "x" * 3_000_000 + "\n").encode(), 2, "the most one row may hold"),
    "ragged rows": ((_body(2) + "2016-10-07T20:09:00Z\n2016-10-07T20:10:00Z,a,b,c\n").encode(), 3, ":5:"),
    "bad times": ((_body(2) + "yesterday,x\n2016-02-30T00:00:00Z,y\n2016-10-07T20:09:00+99:00,z\n").encode(),
                  2, ":4:"),
    "no final newline": (_body(3).rstrip("\n").encode(), 3, None),
    "header only": (b"when,text\n", 0, None),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_hostile_csv_loads_its_good_rows_names_its_bad_ones_and_reruns_to_nothing(name, gz, tmp_path, capsys):
    body, loads, words = HOSTILE[name]
    f = tmp_path / ("in.csv.gz" if gz else "in.csv")
    f.write_bytes(gzip.compress(body) if gz else body)
    db = tmp_path / "x.duckdb"
    args = ["--db", str(db), "import", "items", str(f), "--source", "s", "--time-column", "when",
            "--text-column", "text"]
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code in (0, 1, 2), (code, out, err)
    if words:
        assert words in out + err, (out, err)
    if loads:
        import duckdb

        con = duckdb.connect(str(db), read_only=True)
        try:
            (stored,) = con.execute("SELECT count(*) FROM items").fetchone()
        finally:
            con.close()
        assert stored == loads, (out, err)
        assert main(args) in (0, 1)
        assert "0 new" in capsys.readouterr().out
    else:
        assert code in (1, 2) or "0 new" in out


@pytest.mark.parametrize("damage", ["cut short", "empty", "garbage after the magic bytes"])
def test_a_damaged_gzip_is_one_clear_line(damage, tmp_path, capsys):
    whole = gzip.compress(_body(50).encode())
    f = tmp_path / "in.csv.gz"
    f.write_bytes({"cut short": whole[: len(whole) // 2], "empty": b"",
                   "garbage after the magic bytes": whole[:10] + b"\x00garbage" * 50}[damage])
    args = ["--db", str(tmp_path / "x.duckdb"), "import", "items", str(f), "--source", "s",
            "--time-column", "when", "--text-column", "text"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    f.write_bytes(whole)  # the whole download, and the same command
    assert main(args) == 0 and "50 new" in capsys.readouterr().out


def test_the_content_decides_not_the_name(tmp_path, capsys):
    """A plain file named .gz, a gzip file named .csv: each read as what it is."""
    plain, packed = tmp_path / "plain.csv.gz", tmp_path / "packed.csv"
    plain.write_text(_body(3))
    packed.write_bytes(gzip.compress(_body(4).encode()))
    for f, n in ((plain, 3), (packed, 4)):
        assert main(["--db", str(tmp_path / "x.duckdb"), "import", "items", str(f), "--source", f.stem,
                     "--time-column", "when", "--text-column", "text"]) == 0
        assert f"{n} new" in capsys.readouterr().out


def _unwritable(kind, tmp_path):
    if kind == "a file in the way":
        (tmp_path / "plain").write_text("x")
        return tmp_path / "plain" / "sub"
    # sysfs refuses new entries even to root: a real read-only place on any Linux machine.
    if os.access("/sys", os.W_OK) and os.path.ismount("/sys") is False:
        pytest.skip("no /sys here")
    return __import__("pathlib").Path("/sys/media-timing-test")


@pytest.mark.parametrize("kind", ["a file in the way", "a read-only place"])
def test_an_unwritable_staging_or_database_folder_is_one_clear_line(kind, tmp_path, capsys, monkeypatch):
    bad = _unwritable(kind, tmp_path)
    good_db = tmp_path / "ok.duckdb"
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(bad))
    assert main(["--db", str(good_db), "feeds", "add", "http://127.0.0.1:9/x.xml", "--name", "x",
                 "--role", "news"]) == 0
    assert main(["--db", str(good_db), "ingest", "feeds", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the staging folder" in err and "MEDIA_TIMING_DATA_DIR" in err and "Traceback" not in err
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(tmp_path / "data"))
    assert main(["--db", str(bad / "x.duckdb"), "ingest", "load"]) == 2
    err = capsys.readouterr().err
    assert "cannot create the folder" in err and "Traceback" not in err
