"""GDELT 2.0 backfill against generated files in the documented format (tab-separated, no header,
one entry per zip) on a loopback server: slots derived from the window, batch intervals, claims
kept or flagged, filters, and every bad file recorded with its reason while the rest loads."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.sources.gdelt import GKG, MENTIONS, backfill_gdelt, read_manifest, slot_labels

T = datetime(2016, 10, 7, 20, 0, tzinfo=UTC)


def zipped(text: str, entries: int = 1) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(entries):
            z.writestr(f"f{i}.csv", text)
    return buf.getvalue()


def mention(url: str, domain: str, label: str, kind: str = "1") -> str:
    row = dict.fromkeys(MENTIONS, "")
    row.update(GLOBALEVENTID="1", EventTimeDate=label, MentionTimeDate=label, MentionType=kind,
               MentionSourceName=domain, MentionIdentifier=url, Confidence="100")
    return "\t".join(row[c] for c in MENTIONS)


def gkg(url: str, domain: str, label: str, title: str, claimed: str | None, big: int = 0) -> str:
    row = dict.fromkeys(GKG, "")
    extras = f"<PAGE_TITLE>{title}</PAGE_TITLE>" + (f"<PAGE_PRECISEPUBTIMESTAMP>{claimed}</PAGE_PRECISEPUBTIMESTAMP>"
                                                    if claimed else "")
    row.update(GKGRECORDID=f"{label}-1", DATE=label, SourceCollectionIdentifier="1", SourceCommonName=domain,
               DocumentIdentifier=url, GCAM="x" * big, Extras=extras)
    return "\t".join(row[c] for c in GKG)


@pytest.fixture
def ws(fresh_ws):
    return fresh_ws


def test_slots_cover_the_window_in_15_minute_batches():
    assert slot_labels(T, T + timedelta(minutes=30)) == ["20161007201500", "20161007203000"]
    assert slot_labels(T - timedelta(seconds=1), T + timedelta(minutes=15)) == ["20161007200000", "20161007201500"]
    assert slot_labels(T + timedelta(minutes=1), T + timedelta(minutes=14)) == ["20161007201500"]
    assert len(slot_labels(T, T + timedelta(days=1))) == 96
    assert slot_labels(T, T) == ["20161007200000"]


def serve(httpserver, files: dict[str, bytes | None]):
    for name, body in files.items():
        if body is None:
            httpserver.expect_request(f"/gdeltv2/{name}").respond_with_data("not found", status=404)
        else:
            httpserver.expect_request(f"/gdeltv2/{name}").respond_with_data(body, content_type="application/zip")
    return httpserver.url_for("/gdeltv2")


def test_a_window_of_files_loads_with_batch_intervals_claims_and_gaps(httpserver, ws):
    a, b, c = "20161007200000", "20161007201500", "20161007203000"
    wapo = "https://www.washingtonpost.com/politics/trump-recorded-having-extremely-lewd-conversation/2016/10/07/x.html"
    files = {
        f"{a}.gkg.csv.zip": zipped("\n".join([
            gkg("https://example.com/hack", "example.com", a, "U.S. accuses Russia of hacking", "20161007193000"),
            gkg("https://other.org/x", "other.org", a, "Elsewhere", None),  # filtered out by domain
        ]) + "\n"),
        f"{a}.mentions.CSV.zip": zipped(mention("https://example.com/hack", "example.com", a) + "\n"
                                        + mention("CITATION", "example.com", a, kind="2") + "\n"),
        f"{b}.gkg.csv.zip": zipped("\n".join([
            gkg(wapo, "washingtonpost.com", b, "Trump recorded having &quot;extremely lewd&quot; talk & more",
                "20161007200200"),
            gkg("https://example.com/late", "example.com", b, "Claims a later time", "20161007220000"),
            gkg("https://example.com/huge", "example.com", b, "A huge GCAM field", None, big=200_000),
            "\t".join(["too", "few", "fields"] * 5),  # 15 fields
            "\t".join(["x"] * 28),  # 28: one too many
        ]) + "\n"),
        f"{b}.mentions.CSV.zip": zipped("\t".join(["x"] * 17) + "\n" + mention(wapo, "washingtonpost.com", b) + "\n"),
        f"{c}.gkg.csv.zip": None,  # a gap
        f"{c}.mentions.CSV.zip": zipped("x", entries=2),
    }
    base = serve(httpserver, files)
    reps = backfill_gdelt(ws, T - timedelta(minutes=1), T + timedelta(minutes=30), base_url=base,
                          domains=("example.com", "washingtonpost.com"))
    by = {(r.label, r.table): r for r in reps}
    assert by[(c, "gkg")].status == "missing" and "gap" in by[(c, "gkg")].reason
    assert by[(c, "mentions")].status == "failed" and "2 entries" in by[(c, "mentions")].reason
    assert [len(by[(b, t)].rejected) for t in ("gkg", "mentions")] == [2, 1]
    assert "15 fields, expected 27" in by[(b, "gkg")].rejected[0]
    with ws.read() as con:
        rows = {u: r for u, *r in con.execute(
            """SELECT url, title, author, first_seen_lo_utc, first_seen_utc, published_utc, time_flags, time_usable
               FROM v_items WHERE source = 'gdelt'""").fetchall()}
        ledger = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM gdelt_files").fetchone()
    assert set(rows) == {"https://example.com/hack", wapo, "https://example.com/late", "https://example.com/huge"}
    title, author, lo, hi, pub, flags, usable = rows[wapo]
    assert title == 'Trump recorded having "extremely lewd" talk & more' and author == "washingtonpost.com"
    assert (lo, hi) == (T, T + timedelta(minutes=15)) and pub == datetime(2016, 10, 7, 20, 2, tzinfo=UTC) and usable
    late = rows["https://example.com/late"]
    assert "after_first_seen" in late[5] and not late[6]  # claimed 1 h 45 min after GDELT saw it
    assert rows["https://example.com/hack"][3] == T  # first seen in the first batch; mentions added nothing new
    assert ledger == (6, 4)
    again = backfill_gdelt(ws, T - timedelta(minutes=1), T + timedelta(minutes=30), base_url=base,
                           domains=("example.com", "washingtonpost.com"))
    assert {(r.label, r.table, r.status) for r in again} == {(c, "gkg", "missing"), (c, "mentions", "failed")}
    assert sum(r.new for r in again) == 0


def test_size_md5_and_truncation_are_checked(httpserver, ws):
    a = "20161007200000"
    good = zipped(gkg("https://example.com/a", "example.com", a, "A", None) + "\n")
    cut = zipped(gkg("https://example.com/b", "example.com", "20161007201500", "B", None) + "\n")[:-30]
    base = serve(httpserver, {f"{a}.gkg.csv.zip": good, "20161007201500.gkg.csv.zip": cut})
    manifest = read_manifest(f"{len(good)} {hashlib.md5(b'other').hexdigest()} {base}/{a}.gkg.csv.zip\n"
                             "not a manifest line\n")
    reps = backfill_gdelt(ws, T - timedelta(minutes=1), T + timedelta(minutes=15), tables=("gkg",), base_url=base,
                          manifest=manifest)
    reasons = {r.label: r.reason for r in reps}
    assert "MD5" in reasons[a] and "not a complete zip" in reasons["20161007201500"]
    ok = read_manifest(f"{len(good)} {hashlib.md5(good).hexdigest()} {base}/{a}.gkg.csv.zip")
    (rep, _) = backfill_gdelt(ws, T - timedelta(minutes=1), T + timedelta(minutes=15), tables=("gkg",),
                              base_url=base, manifest=ok)
    assert rep.status == "ok" and rep.new == 1


def test_keyword_filter_and_command_line(httpserver, db_path, capsys):
    from pipeline.cli import main

    a = "20161007200000"
    base = serve(httpserver, {f"{a}.gkg.csv.zip": zipped("\n".join([
        gkg("https://example.com/podesta-emails", "example.com", a, "WikiLeaks releases Podesta emails", None),
        gkg("https://example.com/weather", "example.com", a, "Hurricane Matthew", None)]) + "\n")})
    assert main(["--db", str(db_path), "backfill", "gdelt", "--from", "2016-10-07T19:50Z", "--to", "2016-10-07T20:00Z",
                 "--tables", "gkg", "--keyword", "podesta", "--base-url", base]) == 0
    out = capsys.readouterr().out
    assert "1 files: 1 loaded" in out and "1 new items" in out
    assert main(["--db", str(db_path), "backfill", "gdelt", "--from", "2016-10-07", "--to", "2016-10-08",
                 "--tables", "events", "--base-url", base]) == 2


def test_backfill_plans_units_and_refuses_bad_forms():
    from pipeline import jobs
    from pipeline.sources.gdelt import GdeltError

    assert jobs.as_list("a.com, b.com\nc.com") == ["a.com", "b.com", "c.com"] and jobs.as_list(None) == []
    units = jobs.backfill_plan("wayback", "http://a/rss\nhttp://b/rss", "2016-10-06", "2016-10-08")
    assert [u["url"] for u in units] == ["http://a/rss", "http://b/rss"]
    slots = jobs.backfill_plan("gdelt", None, "2016-10-07", "2016-10-07")  # the whole day, inclusive
    assert len(slots) == 96 and slots[0]["label"] == "20161007001500" and slots[-1]["label"] == "20161008000000"
    for kind, urls, start, end, words in [("wayback", None, "2016-10-06", "2016-10-07", "at least one URL"),
                                          ("gdelt", None, "2016-10-08", "2016-10-07", "before it starts"),
                                          ("ftp", None, "2016-10-06", "2016-10-07", "no archive 'ftp'"),
                                          ("gdelt", None, "yesterday", "2016-10-07", "not a date")]:
        with pytest.raises(GdeltError, match=words):
            jobs.backfill_plan(kind, urls, start, end)
