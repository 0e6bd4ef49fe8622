"""`analyze --releases/--announcements` reads its CSV files with DuckDB and parses the times in
SQL; on every file it must give what the reference path gives (Python's csv reader and
parse_times, row by row): the same instants, or the same errors by line."""

import csv
import gzip
import io
import random

import numpy as np
import pytest

from pipeline.analysis.analyze_files import InputError, read_times
from pipeline.sources.csvfile import read_records
from pipeline.timestamps import parse_times

GOOD = ["2016-10-07T20:32:00Z", "2016-10-07 16:32:00-04:00", "Fri, 07 Oct 2016 16:32:00 EDT",
        "Fri, 07 Oct 2016 20:32:00 +0000", "2016-10-07T20:32Z", "2016-10-07T20:32:00.123456+00:00",
        "7 Oct 2016 20:32 GMT", "  2016-10-07T21:00:00Z  ", "Friday, 07-Oct-16 20:32:00 UTC"]
BAD = ["soon", "2016-10-07 16:32:00", "2016-10-08", "October 7, 2016 4:32 PM -0400", "2016-13-45T99:00:00Z",
       "2016-10-07T20:32:00+19:00", ""]
TITLES = ["plain", "with, comma", 'a "quoted" word', "two\nlines", ""]


def reference(path):
    """The row-by-row path: every record by Python's csv module, every time by parse_times."""
    rec = read_records(path, ["ts_utc"])
    f = rec.frame
    cols = {"ts_utc": parse_times(f["ts_utc"])}
    blank = {}
    for c in ("earliest_utc", "latest_utc"):
        if c in f:  # a blank one means ts_utc: its own errors are ts_utc's, reported once
            blank[c] = (f[c].fillna("").str.strip() == "").to_numpy()
            cols[c] = parse_times(f[c].where(~blank[c], f["ts_utc"]))
    problems = sorted([(line, f"{path}:{line}: {why}") for line, why in rec.rejected]
                      + [(line, f"{path}:{line}: {name}: {err}") for name, p in cols.items()
                         for line, err, b in zip(f["_line"], p.error, blank.get(name, np.zeros(len(f), bool)))
                         if err and not b])
    if problems:
        return [p for _, p in problems[:20]], len(problems)
    sec = {c: p.utc.astype("int64").to_numpy() / 1e6 for c, p in cols.items()}
    best = sec["ts_utc"]
    lo, hi = sec.get("earliest_utc", best), sec.get("latest_utc", best)
    wrong = np.flatnonzero((lo > best) | (best > hi))
    if wrong.size:
        return [f"{path}:{f['_line'].iat[wrong[0]]}: earliest_utc <= ts_utc <= latest_utc does not hold"], 1
    return sorted(zip(lo, hi, best))


def write(tmp_path, rng, *, bad_share: float, wrong_share: float, intervals: bool, gz: bool, malformed: bool):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=rng.choice(["\n", "\r\n"]))
    w.writerow(["title", "ts_utc"] + (["earliest_utc", "latest_utc"] if intervals else []))
    for _ in range(rng.randint(0, 60)):
        t = rng.choice(BAD if rng.random() < bad_share else GOOD)
        row = [rng.choice(TITLES), t]
        if intervals:  # blank (= ts_utc) or a bracket around it; now and then the wrong way round
            row += rng.choice([["", ""], ["2016-10-07T00:00:00Z", "2016-10-09T00:00:00Z"],
                               ["", "Sun, 09 Oct 2016 00:00:00 GMT"]]) if rng.random() > wrong_share \
                else ["2016-10-09T00:00:00Z", ""]
        w.writerow(row)
    text = buf.getvalue()
    if malformed:  # a quote inside an unquoted field (text to Python, refused by DuckDB); or one never closed
        text += rng.choice(['oops "x"y,2016-10-07T20:32:00Z\n', '"never closed,2016-10-07T20:32:00Z\n'])
    path = tmp_path / ("a.csv.gz" if gz else "a.csv")
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("seed", range(40))
def test_every_file_reads_as_the_reference_reads_it(tmp_path, seed):
    rng = random.Random(seed)
    path = write(tmp_path, rng, bad_share=rng.choice([0, 0, 0, 0.05, 0.5]), wrong_share=rng.choice([0, 0, 0.05]),
                 intervals=rng.random() < 0.5,
                 gz=rng.random() < 0.3, malformed=rng.random() < 0.15)
    want = reference(path)
    if isinstance(want, tuple):  # errors: the same first 20 lines, the same count
        with pytest.raises(InputError) as exc:
            read_times(path)
        lines = str(exc.value).splitlines()
        assert lines[:20] == want[0][:20]
        assert (lines[20:] == [f"... and {want[1] - 20} more"]) if want[1] > 20 else len(lines) == want[1]
    else:
        lo, hi, best = read_times(path)
        assert sorted(zip(lo, hi, best)) == want
        assert np.all(lo <= best) and np.all(best <= hi)


def test_an_empty_file_reads_as_no_times(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("ts_utc\n")
    assert [len(a) for a in read_times(path)] == [0, 0, 0]
