"""The media-timing command as a user meets it."""

import argparse
import json

import pytest

from pipeline.cli import build_parser, main


def _all_parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, path + (name,))


def test_every_command_has_help(capsys):
    paths = [p for p, _ in _all_parsers(build_parser())]
    assert ("demo",) in paths and ("import", "items") in paths and ("sql",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as exc:
            main([*path, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: media-timing"), path


def test_sql_prints_one_query_as_a_table(case_db, capfd):
    assert main(["--db", str(case_db), "sql", "SELECT count(*) AS n_events FROM events"]) == 0
    out = capfd.readouterr().out
    assert "n_events" in out and "66" in out


def test_sql_is_read_only(case_db, capfd):
    assert main(["--db", str(case_db), "sql", "DELETE FROM events"]) == 2
    assert "read-only" in capfd.readouterr().err
    assert main(["--db", str(case_db), "sql", "SELECT count(*) FROM events"]) == 0
    assert "66" in capfd.readouterr().out


def test_sql_prompt_reads_statements_until_semicolons(case_db, capfd, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT 40 +\n 2 AS answer;\n.quit\n"))
    assert main(["--db", str(case_db), "sql"]) == 0
    assert "42" in capfd.readouterr().out


def test_import_reports_bad_rows_and_exits_1(tmp_path, capsys):
    f = tmp_path / "s.csv"
    f.write_text("when,text\n2016-10-07T20:00:00Z,ok\nnot a time,bad\n")
    db = tmp_path / "x.duckdb"
    code = main(["--db", str(db), "import", "items", str(f), "--source", "s",
                 "--time-column", "when", "--text-column", "text"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{f}:3: when: unparseable time 'not a time'" in captured.err
    assert "1 new" in captured.out


def test_a_missing_column_is_one_clear_line(tmp_path, capsys):
    f = tmp_path / "s.csv"
    f.write_text("when,text\n2016-10-07T20:00:00Z,ok\n")
    code = main(["--db", str(tmp_path / "x.duckdb"), "import", "items", str(f), "--source", "s",
                 "--time-column", "time", "--text-column", "text"])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: {f}: line 1: missing column(s) time")


def test_analyze_two_csv_files_prints_json(tmp_path, capsys):
    rel = tmp_path / "r.csv"
    ann = tmp_path / "a.csv"
    rel.write_text("ts_utc,earliest_utc,latest_utc\n2016-10-07T20:32:00Z,,\n"
                   "2016-10-12T16:52:00Z,2016-10-12T16:00:00Z,2016-10-12T17:44:00Z\n")
    rows = [f"2016-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:00Z" for m, d in ((9, 30), (10, 3), (10, 7),
            (10, 12), (10, 20), (10, 25)) for h in (13, 16, 20) for mi in (5, 40)]
    ann.write_text("ts_utc\n" + "\n".join(rows) + "\n")
    code = main(["analyze", "--releases", str(rel), "--announcements", str(ann), "--window", "60",
                 "--null", "jitter", "--surrogates", "199", "--seed", "3", "--draws", "10", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["release_ts_utc"] for r in doc["releases"]] == ["2016-10-07T20:32:00Z", "2016-10-12T16:52:00Z"]
    first = doc["releases"][0]
    assert first["count"] == 2  # 20:05 and 20:40 on 7 Oct
    assert 0 < first["pvalue"] <= 1
    assert doc["releases"][1]["count_min"] <= doc["releases"][1]["count_max"]
    assert doc["draws"] == 10 and doc["surrogates"] == 199 and doc["null"].startswith("jitter")
    assert set(doc["pooled"]) >= {"statistic", "pvalue"}


def test_analyze_names_the_bad_line(tmp_path, capsys):
    rel = tmp_path / "r.csv"
    rel.write_text("ts_utc\nsoon\n")
    ann = tmp_path / "a.csv"
    ann.write_text("ts_utc\n2016-10-07T20:00:00Z\n")
    assert main(["analyze", "--releases", str(rel), "--announcements", str(ann), "--json"]) == 2
    assert f"{rel}:2: ts_utc: unparseable time 'soon'" in capsys.readouterr().err


def test_analyze_claim_stores_a_run_and_writes_a_report(case_db, tmp_path, capsys):
    code = main(["--db", str(case_db), "analyze", "--claim", "oct7_2016", "--surrogates", "199",
                 "--draws", "5", "--report", str(tmp_path / "rep")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Verdict:" in out and "stored in" in out
    assert (tmp_path / "rep" / "oct7_2016.html").exists()
    assert (tmp_path / "rep" / "oct7_2016_timeline.png").stat().st_size > 10_000


# --- bad arguments: one clear line, never a traceback ---------------------------------------

def _bad_cases(tmp_path):
    """Bad arguments for every subcommand ({d}: a folder, {db}: a database that exists)."""
    d = tmp_path
    (d / "bad.yaml").write_text("feeds: [unclosed\n")
    (d / "rows.csv").write_text("when,text\nnot a time,x\n")
    (d / "dup.csv").write_text("when,when,text\n2016-10-07T20:00:00Z,2016-10-07T20:00:00Z,x\n")
    (d / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    import gzip
    (d / "cut.csv.gz").write_bytes(gzip.compress(b"when,text\n2016-10-07T20:00:00Z,x\n" * 100)[:60])
    (d / "plain.txt").write_text("not a database")
    items = ["--source", "s", "--time-column", "when", "--text-column", "text"]
    (d / "rules.yaml").write_text("stories:\n  x: {any: podesta}\n")
    (d / "onsets.yaml").write_text("id: o\ntitle: t\nreleases: {event_ids: [E015]}\nstreams: [{source: ira_newsfeed}]\n"
                                   "onsets: {stories_file: rules.yaml}\n")
    stories = [[], ["--claim", "nope"], ["--claim", str(d / "bad.yaml")], ["--claim", str(d / "onsets.yaml")],
               ["--claim", "oct7_2016", "--source", "nope"], ["--claim", "all_releases"]]
    return {
        ("backfill", "wayback"): [[], ["http://x"], ["http://x", "--from", "yesterday", "--to", "2016-10-07"],
                                  ["ftp://x", "--from", "2016-10-06", "--to", "2016-10-07"],
                                  ["http://x", "--from", "2016-10-08", "--to", "2016-10-07"]],
        ("backfill", "gdelt"): [[], ["--from", "2016-10-07"], ["--from", "2016-10-08", "--to", "2016-10-07"],
                                ["--from", "2016-10-07", "--to", "2016-10-08", "--tables", "events"],
                                ["--from", "2016-10-07", "--to", "2016-10-08", "--manifest", str(d / "missing.txt")]],
        ("onsets",): stories,
        ("stories", "check"): stories,
        ("demo",): [["--surrogates", "0"], ["--surrogates", "lots"], ["--bogus"]],
        ("migrate",): [["--bogus"]],
        ("import", "events"): [[str(d / "missing.csv")], [str(d / "binary.csv")], [str(d / "rows.csv")], []],
        ("import", "items"): [[str(d / "missing.csv"), *items], [str(d / "rows.csv"), *items, "--timezone", "Mars/Olympus"],
                              [str(d / "cut.csv.gz"), *items], [str(d / "dup.csv"), *items],
                              [str(d / "rows.csv"), *items, "--role", "boss"], [str(d / "rows.csv")]],
        ("analyze",): [[], ["--claim", "nope"], ["--claim", "oct7_2016", "--window", "7.5"],
                       ["--claim", "oct7_2016", "--window", "-5"], ["--claim", "oct7_2016", "--surrogates", "0"],
                       ["--claim", "2016"], ["--claim", str(d / "bad.yaml")],
                       ["--releases", str(d / "missing.csv"), "--announcements", str(d / "missing.csv")],
                       ["--releases", str(d / "rows.csv")], ["--claim", "x", "--releases", "y"],
                       ["--claim", "oct7_2016", "--null", "coin"]],
        ("sql",): [["SELECT * FROM nowhere"], ["SELEC 1"], ["DROP TABLE items"]],
        ("feeds", "add"): [["ftp://example.org/x", "--name", "n", "--role", "news"], ["http://example.org/x"],
                           ["http://example.org/x", "--name", "n", "--role", "boss"]],
        ("feeds", "import"): [[str(d / "missing.opml")], [str(d / "bad.yaml")], [str(d / "binary.csv")]],
        ("feeds", "list"): [["--bogus"]],
        ("feeds", "enable"): [["nope"], []],
        ("ingest", "feeds"): [["--feed", "nope"]],
        ("ingest", "load"): [["--bogus"]],
        ("digest",): [["--week", "2016-41"], ["--week", "2016-W99"], ["--send"],
                      ["--week", "2016-W40", "--out", "/proc/no/such/dir/x.html"]],
    }


@pytest.mark.parametrize("database", ["none", "case", "not a database", "folder is a file"])
def test_no_traceback_reaches_the_user_from_any_subcommand(database, case_db, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MEDIA_TIMING_DIGEST_TO", raising=False)
    db = {"none": tmp_path / "none.duckdb", "case": case_db, "not a database": tmp_path / "plain.txt",
          # A folder that cannot be made, even by root (tests may run as root, where chmod is moot).
          "folder is a file": tmp_path / "plain.txt" / "sub" / "x.duckdb"}[database]
    cases = _bad_cases(tmp_path)
    commands = {p for p, _ in _all_parsers(build_parser()) if p and not any(
        isinstance(a, argparse._SubParsersAction) for a in _parser_at(p)._actions)}
    assert commands == set(cases), "every subcommand needs bad cases here"
    for path, variants in cases.items():
        for args in variants:
            try:
                code = main(["--db", str(db), *path, *args])
            except SystemExit as exc:  # argparse: usage and one error line
                code = exc.code
            err = capsys.readouterr().err
            assert "Traceback" not in err, (path, args, err)
            assert code in (1, 2), (path, args, code, err)
            lines = [line for line in err.splitlines() if line.startswith(("error:", "media-timing"))]
            assert lines and len(lines[-1]) < 600, (path, args, err)


def _parser_at(path):
    for p, parser in _all_parsers(build_parser()):
        if p == path:
            return parser
    raise KeyError(path)


def test_an_import_whose_every_row_is_rejected_leaves_no_source(tmp_path, capsys):
    f = tmp_path / "all_bad.csv"
    f.write_text("when,text\nsoon,a\nlater,b\n")
    db = tmp_path / "x.duckdb"
    code = main(["--db", str(db), "import", "items", str(f), "--source", "ghost", "--time-column", "when",
                 "--text-column", "text"])
    assert code == 1 and "2 rejected" in capsys.readouterr().out
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM sources WHERE name = 'ghost'").fetchall() == [(0,)]
        assert con.execute("SELECT source, rows_rejected FROM v_imports").fetchall() == [("ghost", 2)]
    finally:
        con.close()


def test_analyze_names_only_claims(capsys):
    assert main(["analyze", "--claim", "nope"]) == 2
    err = capsys.readouterr().err
    assert "oct7_2016" in err and "podesta_series" in err and "all_releases" in err
    assert "stories" not in err.split("the claims are:")[1].split("(")[0]
