"""`make demo`'s job, as a new user runs it: offline, in a fresh data directory, twice."""

import os
import subprocess
import sys
import time

import duckdb

from tests.conftest import ROOT


def run_demo(tmp_path):
    env = {**os.environ, "MEDIA_TIMING_DATA_DIR": str(tmp_path), "MEDIA_TIMING_DB": str(tmp_path / "demo.duckdb")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, time.monotonic() - started


def test_demo_prints_the_verdict_and_writes_the_report(tmp_path):
    out, seconds = run_demo(tmp_path)
    # The table: the three events of 7 Oct 2016 in UTC, with gaps to the release.
    assert "2016-10-07 19:30 (19:15-19:45)" in out and "-62 min (-78 to -47)" in out
    assert "2016-10-07 20:02" in out and "-30 min (-31 to -29)" in out
    assert "2016-10-07 20:32" in out and "RELEASE" in out
    assert "announcement first" in out
    assert "null: shuffle-weekday-hour" in out and "9,999 surrogates" in out and "seed 20161007" in out
    assert "p-value" in out and "Verdict:" in out
    assert "never proof of intent" in out and "chosen after the" in out
    report = tmp_path / "reports" / "oct7_2016.html"
    html = report.read_text()
    assert "oct7_2016_timeline.png" in html and (tmp_path / "reports" / "oct7_2016_timeline.png").exists()
    assert seconds < 60

    con = duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True)
    counts = con.execute("SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM events), "
                         "(SELECT count(*) FROM results)").fetchall()[0]
    con.close()
    again, _ = run_demo(tmp_path)
    assert "already stored" in again and "0 new" in again
    con = duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True)
    assert con.execute("SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM events), "
                       "(SELECT count(*) FROM results)").fetchall()[0] == counts
    assert counts[0] == 946 + 1599 + 5989 and counts[1] == 66
