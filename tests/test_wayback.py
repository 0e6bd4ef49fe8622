"""Backfill from the Internet Archive against a loopback fake: recorded CDX pages and a blocked
URL from real cassettes, scripted feed captures with revisits, error pages, redirects and
impossible timestamps; first-seen intervals that always hold the true add time; politeness
(rate, 429 and Retry-After, stopping); kills and reruns that neither lose nor duplicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import numpy as np
import pytest

from pipeline.sources.wayback import backfill_wayback
from pipeline.sources.wayback_client import ArchiveRefused, WaybackClient, ts14
from tests.wayback_fake import FakeWayback, cassette_pages

FEED = "http://www.example-news.com/rss.xml"
T0 = datetime(2016, 10, 6, tzinfo=UTC)


def rss(items: list[tuple[str, datetime]]) -> bytes:
    body = "".join(f"<item><title>{t}</title><link>http://www.example-news.com/{abs(hash(t))}</link>"
                   f"<guid>{t}</guid><pubDate>{format_datetime(p)}</pubDate></item>" for t, p in items)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>{body}</channel></rss>'.encode()


@pytest.fixture
def fake():
    f = FakeWayback()
    yield f
    f.close()


@pytest.fixture
def ws(fresh_ws):
    return fresh_ws


def client(fake, **kw):
    return WaybackClient(fake.cdx, fake.playback, per_minute=kw.pop("per_minute", 100000), **kw)


def items_of(ws, source="wayback:example-news.com"):
    with ws.read() as con:
        return con.execute(
            """SELECT guid, first_seen_lo_utc, first_seen_utc, published_utc, time_flags, provenance, time_usable
               FROM v_items WHERE source = ? ORDER BY guid""", [source]).fetchall()


def script_feed(fake, times, window=5, seed=0):
    """Items published at ``times``; captures at random instants, each holding the newest
    ``window`` items published before it. Returns the true publication time per title."""
    rng = np.random.default_rng(seed)
    caps = sorted({T0 + timedelta(minutes=int(m)) for m in rng.uniform(0, 72 * 60, 12)})
    truth = {f"story {i}": t for i, t in enumerate(times)}
    for c in caps:
        live = sorted([(n, t) for n, t in truth.items() if t <= c], key=lambda x: x[1])[-window:]
        fake.archive.add_capture(FEED, ts14(c), rss(live[::-1]))
    return truth, caps


def test_every_true_add_time_lies_inside_its_first_seen_interval(fake, ws):
    for seed in range(4):
        fake.archive.captures.clear()
        rng = np.random.default_rng(100 + seed)
        times = sorted(T0 + timedelta(minutes=int(m)) for m in rng.uniform(0, 72 * 60, 30))
        truth, caps = script_feed(fake, times, window=int(rng.integers(3, 12)), seed=seed)
        source = f"w{seed}"
        backfill_wayback(ws, [FEED], T0, T0 + timedelta(days=3), source=source, client=client(fake))
        got = items_of(ws, source)
        assert got, seed
        for guid, lo, hi, pub, flags, prov, usable in got:
            t = truth[guid]
            assert t <= hi, (seed, guid)  # never seen before it existed
            if "window_overflow" not in flags and lo is not None:
                assert lo < t, (seed, guid, lo, t)
            assert prov.startswith("wayback:") and ts14(hi) in prov
            assert pub == t and usable  # the claim is kept beside the sighting, and it is honest


def test_a_rerun_adds_nothing_and_a_killed_run_resumes(fake, ws):
    times = [T0 + timedelta(hours=h) for h in range(0, 60, 3)]
    script_feed(fake, times, window=4)
    whole = backfill_wayback(ws, [FEED], T0, T0 + timedelta(days=3), source="once", client=client(fake))[0]
    again = backfill_wayback(ws, [FEED], T0, T0 + timedelta(days=3), source="once", client=client(fake))[0]
    assert again.items_new == 0 and again.already_done == whole.captures and again.payloads_fetched == 0

    class Killed(Exception):
        pass

    calls = {"n": 0}
    real = WaybackClient.payload

    def dies_on_fifth(self, cap):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Killed
        return real(self, cap)

    WaybackClient.payload = dies_on_fifth
    try:
        with pytest.raises(Killed):
            backfill_wayback(ws, [FEED], T0, T0 + timedelta(days=3), source="killed", client=client(fake))
    finally:
        WaybackClient.payload = real
    resumed = backfill_wayback(ws, [FEED], T0, T0 + timedelta(days=3), source="killed", client=client(fake))[0]
    assert 4 <= resumed.already_done < whole.captures  # the four payloads before the kill were kept
    assert resumed.already_done + resumed.ok + sum(resumed.failed.values()) == whole.captures
    assert [r[:3] for r in items_of(ws, "killed")] == [r[:3] for r in items_of(ws, "once")]


def test_hostile_captures_are_recorded_with_their_reason_and_the_rest_loads(fake, ws):
    a = T0 + timedelta(hours=1)
    good = rss([("first", a)])
    fake.archive.add_capture(FEED, ts14(a + timedelta(minutes=5)), good)
    fake.archive.add_capture(FEED, ts14(a + timedelta(hours=1)), None, status="-", mimetype="warc/revisit",
                             digest=fake.archive.captures[FEED][0][5],
                             playback=(200, good, {"Content-Type": "application/rss+xml"}))
    fake.archive.add_capture(FEED, "20161006000000"[:8] + "996199", None)  # impossible time
    fake.archive.add_capture(FEED, ts14(a + timedelta(hours=2)), None, status="404", mimetype="text/html")
    fake.archive.add_capture(FEED, ts14(a + timedelta(hours=3)), None, status="301", mimetype="text/html")
    fake.archive.add_capture(FEED, ts14(a + timedelta(hours=4)), b"<html><body>Oops, an error</body></html>",
                             mimetype="text/html")
    fake.archive.add_capture(FEED, ts14(a + timedelta(hours=5)), b"x", digest="ELSEWHERE",
                             playback=(302, b"", {"Location": "http://other.example.org/moved"}))
    late = rss([("first", a), ("second & more", a + timedelta(hours=9)), ("third", a + timedelta(hours=5))])
    fake.archive.add_capture(FEED, ts14(a + timedelta(hours=6)), late)  # a bare & in a title
    rep = backfill_wayback(ws, [FEED], T0, T0 + timedelta(days=2), client=client(fake))[0]
    assert rep.ok == 3 and rep.items_new == 3  # first (revisit adds nothing), second, third
    reasons = " | ".join(rep.failed)
    for words in ("impossible capture timestamp", "HTTP status 404", "historical redirect", "not a feed",
                  "playback answered 302"):
        assert words in reasons, reasons
    by = {r[0]: r for r in items_of(ws)}
    second = by["second & more"]
    assert "after_first_seen" in second[4] and not second[6]  # claimed 3 h after it was seen: not trusted
    assert by["third"][6] and by["third"][1] == a + timedelta(hours=1)  # the revisit was the last good capture
    with ws.read() as con:
        outcomes = dict(con.execute("SELECT outcome, count(*) FROM wayback_captures GROUP BY ALL").fetchall())
    assert outcomes == {"ok": 3, "failed": 3, "quarantined": 1, "redirect": 1}


def test_recorded_multipage_search_follows_every_resume_key(fake):
    fake.archive.cassettes["cnn.com"] = "test_search_multipage.yaml"
    caps = client(fake).captures("cnn.com", "20010410000000", "20010510000000")
    recorded = cassette_pages("test_search_multipage.yaml")
    assert sum(1 for p in fake.archive.log if p.startswith("/cdx/")) == len(recorded) == 15
    assert len(caps) == sum(len(rows) for _, rows, _, _, _ in recorded) > 300  # repeated rows kept
    assert caps[0].timestamp == "20010410213930" and all("cnn.com" in c.original for c in caps)
    assert {c.status for c in caps} == {"200", "302"}  # redirects are listed, not filtered away
    assert [c.timestamp for c in caps] == sorted(c.timestamp for c in caps)


def test_a_blocked_url_is_reported_and_the_next_url_still_loads(fake, ws):
    fake.archive.cassettes["https://nationalpost.com/health"] = "test_search_raises_for_blocked_urls.yaml"
    fake.archive.add_capture(FEED, ts14(T0 + timedelta(hours=2)), rss([("only", T0 + timedelta(hours=1))]))
    blocked, fine = backfill_wayback(ws, ["https://nationalpost.com/health", FEED], T0, T0 + timedelta(days=1),
                                     client=client(fake))
    assert blocked.blocked and "does not show captures" in blocked.blocked
    assert fine.items_new == 1


def test_politeness_rate_429_retry_after_and_stopping(fake):
    slept, now = [], [0.0]

    def sleep(s):
        slept.append(s)
        now[0] += s

    c = WaybackClient(fake.cdx, fake.playback, per_minute=24, sleep=sleep, clock=lambda: now[0], backoff_s=10)
    fake.archive.add_capture(FEED, ts14(T0), rss([]))
    fake.archive.throttle, fake.archive.retry_after = 2, "45"
    c.captures(FEED, "2016", "2017")
    assert slept[:2] == [45.0, 45.0] or (slept[0] >= 45 and slept[1] >= 45)  # Retry-After honoured, growing
    fake.archive.page_size = 1
    for i in range(3):
        fake.archive.add_capture(FEED, ts14(T0 + timedelta(hours=i + 1)), rss([]))
    slept.clear()
    c.captures(FEED, "2016", "2017")
    assert all(s >= 2.49 for s in slept) and len(slept) >= 3  # 24 a minute: 2.5 s apart
    fake.archive.throttle = 10
    with pytest.raises(ArchiveRefused, match="stopped so as not to be blocked"):
        c.captures(FEED, "2016", "2017")
    assert fake.archive.throttle == 10 - 5  # gave up after 5 answers of 429, never hammering on
    assert "media-timing" in c.session.headers["User-Agent"]


def test_command_line_backfill_prints_what_it_did(fake, db_path, capsys):
    from pipeline.cli import main

    times = [T0 + timedelta(hours=h) for h in range(0, 40, 4)]
    script_feed(fake, times, window=3)
    args = ["--db", str(db_path), "backfill", "wayback", FEED, "--from", "2016-10-06", "--to", "2016-10-08",
            "--cdx-endpoint", fake.cdx, "--playback-endpoint", fake.playback, "--per-minute", "100000"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "source wayback:example-news.com" in out and "new items" in out
    assert main(args) == 0
    assert " 0 new items" in capsys.readouterr().out
    assert main(["--db", str(db_path), "backfill", "wayback", "ftp://x", "--from", "2016-10-06", "--to",
                 "2016-10-07", "--cdx-endpoint", fake.cdx]) == 2


def test_archived_items_without_a_claimed_time_give_onsets_their_capture_interval(fake, ws):
    from pipeline.analysis.onsets import onset_items

    page = (b"<html><body><a href='/politics/trump-tape'>Trump recorded having extremely lewd conversation"
            b" about women in 2005</a><a href='/about'>About us</a></body></html>")
    front = "http://www.example-news.com/"
    before, after = T0 + timedelta(hours=20), T0 + timedelta(hours=20, minutes=20)
    fake.archive.add_capture(front, ts14(before), b"<html><body><a href='/x'>Nothing to see here at all today</a></body></html>",
                             mimetype="text/html")
    fake.archive.add_capture(front, ts14(after), page, mimetype="text/html")
    rep = backfill_wayback(ws, [front], T0, T0 + timedelta(days=1), source="front", client=client(fake))[0]
    assert rep.ok == 2 and rep.items_new == 2  # the headline links; 'About us' is too short to be one
    with ws.read() as con:
        rows = onset_items(con, "front")
    tape = rows[rows["title"].str.contains("lewd")].iloc[0]
    assert (tape["lo"], tape["hi"]) == (before.timestamp(), after.timestamp())
    assert tape["url"] == "http://www.example-news.com/politics/trump-tape"


def test_an_earlier_range_backfilled_afterwards_tightens_the_intervals(fake, ws):
    a = T0 + timedelta(hours=1)
    for h in (2, 4, 30, 40):  # a story published at `a`, still in the feed at every capture
        fake.archive.add_capture(FEED, ts14(T0 + timedelta(hours=h)), rss([("kept", a), (f"at {h}", a)]))
    backfill_wayback(ws, [FEED], T0 + timedelta(hours=24), T0 + timedelta(days=2), client=client(fake))
    later = {r[0]: r for r in items_of(ws)}["kept"]
    assert later[2] == T0 + timedelta(hours=30) and later[1] is None  # first seen in the later range only
    backfill_wayback(ws, [FEED], T0, T0 + timedelta(hours=23), client=client(fake))
    kept = {r[0]: r for r in items_of(ws)}["kept"]
    assert kept[2] == T0 + timedelta(hours=2) and kept[1] is None  # the first capture of all held it
    assert "wayback:20161006020000" in kept[5]
