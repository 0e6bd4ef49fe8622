"""The fast CSV scan (DuckDB) and the reference reader (Python's csv, strict, resuming after a
bad record) on random files.

Well-formed files have an oracle (they are written from known records): both readers must read
exactly those records, on exactly their lines. Hostile files (stray quotes, quotes never closed)
have none, and the two readers may read them differently (DuckDB drops spaces after a closing
quote; Python's strict reader refuses the record): there, no line of text may be lost
silently (each is part of a record read, or reported), and whatever comes before the first
hostile line reads as written.
"""

import csv
import gzip
import io
import os

import duckdb
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.sources.csv_scan import scan_csv
from pipeline.sources.csvfile import iter_records, read_header

HEADER = ["when", "text", "author"]
PLAIN = st.text(alphabet="abc xyz019-:", min_size=0, max_size=8)
QUOTABLE = st.text(alphabet='abc ,"\n', min_size=0, max_size=10)
SETTINGS = settings(max_examples=int(os.environ.get("CSV_EXAMPLES", 120)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def record(draw):
    """A well-formed record: (its CSV text, the fields a reader must return, or None if it must
    be rejected as too long)."""
    n = draw(st.sampled_from([3, 3, 3, 2, 1, 4]))  # mostly right; short (padded); long (rejected)
    fields = [draw(st.one_of(PLAIN, QUOTABLE)) for _ in range(n)]
    if n == 4 and not fields[3]:
        fields[3] = "x"  # an empty extra field is a trailing delimiter, not a long row
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)  # "\n" so fields holding one are quoted
    text = buf.getvalue()[:-1]  # a lone empty field is written "" (a record, not a blank line)
    return text, (fields + [""] * (3 - n)) if n <= 3 else None


def scan_both(tmp_path, body: bytes, gz: bool):
    path = tmp_path / ("f.csv.gz" if gz else "f.csv")
    path.write_bytes(gzip.compress(body) if gz else body)
    header = read_header(path, [])
    con = duckdb.connect()
    scan = scan_csv(con, path, header, "t")
    got = [tuple(r) for r in con.execute("SELECT * FROM t ORDER BY _line").fetchall()]
    # Keeping some columns (as analyze keeps only the times) reads the same records, lines and
    # rejects, whichever reader ran: the kept columns are a projection of the whole.
    keep = [h for h in header if h != "text"]
    part = scan_csv(con, path, header, "k", keep=keep)
    kept = [tuple(r) for r in con.execute("SELECT * FROM k ORDER BY _line").fetchall()]
    assert [d[0] for d in con.execute("SELECT * FROM k LIMIT 0").description] == [*keep, "_line"]
    con.close()
    at = [header.index(h) for h in keep] + [len(header)]
    assert kept == [tuple(r[i] for i in at) for r in got], body
    assert (part.rejected, part.spans, part.method, part.rows) == (scan.rejected, scan.spans, scan.method, scan.rows)
    ref = list(iter_records(path, len(header)))
    return scan, got, ref


def _plain(rows, newline):
    return [tuple(x.replace("\r", "") if isinstance(x, str) else x for x in r) for r in rows] if newline == "\r\n" else rows


@given(st.lists(st.one_of(record(), st.just(("", "blank"))), max_size=25), st.sampled_from(["\n", "\r\n"]),
       st.booleans(), st.booleans())
@SETTINGS
def test_well_formed_files_read_exactly_as_written_by_both_readers(tmp_path, rows, newline, gz, final_newline):
    lines, expected_good, expected_bad, line = [",".join(HEADER)], [], [], 2
    for text, fields in rows:
        lines.append(text)
        if fields == "blank":
            pass
        elif fields is None:
            expected_bad.append(line)
        else:
            expected_good.append((*fields, line))
        line += text.count("\n") + 1
    body = newline.join(lines) + (newline if final_newline else "")
    scan, got, ref = scan_both(tmp_path, body.encode(), gz)
    ref_good = [(*r.fields, r.line) for r in ref if r.fields is not None]
    assert _plain(got, newline) == _plain(ref_good, newline) == expected_good, (scan.method, body)
    assert [ln for ln, _ in scan.rejected] == [r.line for r in ref if r.fields is None] == expected_bad, body


HOSTILE = st.one_of(PLAIN.map(lambda s: f'{s},"stray"text,x'), PLAIN.map(lambda s: f'{s},"never closed,x'),
                    PLAIN.map(lambda s: f'{s},"q" ,x'))


@given(st.lists(record(), max_size=12), st.lists(st.one_of(record(), HOSTILE.map(lambda t: (t, "hostile"))),
                                                   min_size=1, max_size=12), st.booleans())
@SETTINGS
def test_hostile_files_lose_no_line_silently(tmp_path, before, after, gz):
    rows = before + after
    body = "\n".join([",".join(HEADER)] + [t for t, _ in rows]) + "\n"
    scan, got, _ = scan_both(tmp_path, body.encode(), gz)
    text_lines = {i for i, t in enumerate(body.split("\n"), start=1) if i > 1 and t != ""}
    covered = [ln for r in got for ln in range(r[-1], r[-1] + sum(str(f).count("\n") for f in r[:-1]) + 1)]
    covered += [ln for start, _ in scan.rejected for ln in range(start, start + scan.spans.get(start, 1))]
    assert len(covered) == len(set(covered)), (scan.method, body)  # no line read twice
    assert text_lines <= set(covered), (scan.method, sorted(text_lines - set(covered)), body)
    first_hostile = 2 + sum(t.count("\n") + 1 for t, _ in before)
    want = [(*f, None) for _, f in before if f is not None]
    have = [(*r[:-1], None) for r in got if r[-1] < first_hostile]
    assert have == want, (scan.method, body)


def test_an_unterminated_quote_loses_one_row_not_the_rest(tmp_path):
    rows = [f"2016-10-07T20:{m:02d}:00Z,headline {m},a{m}" for m in range(40)]
    rows[5] = '2016-10-07T20:05:00Z,"Never closed, a headline,a5'
    body = ("when,text,author\n" + "\n".join(rows) + "\n").encode()
    scan, got, ref = scan_both(tmp_path, body, False)
    assert scan.method == "reference"  # DuckDB would read the rest as one record
    assert [line for line, _ in scan.rejected] == [7] and "unterminated quote" in scan.rejected[0][1]
    assert len(got) == 39 and got[-1][-1] == 41


def test_short_rows_are_padded_and_long_ones_rejected_by_line(tmp_path):
    body = b'when,text,author\n2016-10-07T20:00:00Z,"two\nlines",a\n2016-10-07T20:01:00Z,short\nx,y,z,extra\nok,ok,ok\n'
    scan, got, ref = scan_both(tmp_path, body, False)
    assert scan.method == "duckdb"
    assert got == [("2016-10-07T20:00:00Z", "two\nlines", "a", 2), ("2016-10-07T20:01:00Z", "short", "", 4),
                   ("ok", "ok", "ok", 6)]
    assert scan.rejected == [(5, "4 fields where the header has 3")]


@given(st.lists(st.tuples(st.integers(1, 4), st.booleans(), st.integers(1, 3)), min_size=1, max_size=60),
       st.integers(1, 7))
@settings(max_examples=300, deadline=None)
def test_lines_are_placed_alike_in_chunks_of_any_size(records, chunk):
    """Good records (span) and rejected ones (span), in file order: placing them a chunk at a
    time gives the lines the file has."""
    from pipeline.sources.csv_scan import _Placer

    line, good, good_lines, rejects, texts = 2, [], [], [], []
    for span, rejected, _ in records:
        if rejected:
            rejects.append(line)
            texts.append("\n".join(["x"] * span))
        else:
            good.append(span)
            good_lines.append(line)
        line += span
    placer = _Placer(rejects, texts, 2)
    got = [int(x) for lo in range(0, len(good), chunk) for x in placer.place(np.array(good[lo:lo + chunk]))]
    assert got == good_lines and placer.end() == line
