"""Every fixture feed, served over loopback and ingested for real, against feedparser (the
reference): every entry feedparser reads is stored, with the same guid, link and time, or a
documented, flagged reason. Entries feedparser cannot read at all must be stored too."""

import calendar
from datetime import UTC, datetime

import feedparser
import pytest

from pipeline.config import Settings
from pipeline.sources.feeds import FeedSpec, add_feed
from pipeline.sources.ingest import run_ingest
from pipeline.store.database import open_db
from tests.conftest import FIXTURES, LOOPBACK

FILES = sorted(p for p in (FIXTURES / "feeds").iterdir() if p.suffix in (".xml", ".json"))

# Where we store a different time than feedparser computes, and why (the item is flagged).
DIFFERENT_TIME = {
    # feedparser shifts the time by 99 hours; no zone on Earth is +99:00, so we refuse it.
    ("synthetic-titles-and-entities.xml", "t6"): "unparseable",
}
# Documents feedparser reads nothing from, and how many entries we must store from each.
FEEDPARSER_READS_NONE = {
    "synthetic-json-feed-1.1.json": 3,  # JSON Feed is not a format feedparser knows
    "synthetic-utf8-declared-utf16.xml": 10,  # it trusts the declaration and finds an empty document
}


def utc(struct) -> datetime | None:
    return datetime.fromtimestamp(calendar.timegm(struct), UTC) if struct else None


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Every fixture ingested once through a loopback server; rows per file name."""
    from pytest_httpserver import HTTPServer

    tmp = tmp_path_factory.mktemp("differential")
    settings = Settings(db_path=tmp / "d.duckdb", data_dir=tmp / "data", lock_wait_s=5, fetch_processes=1,
                        fetch_allow_networks=LOOPBACK)
    server = HTTPServer(host="127.0.0.1")
    server.start()
    try:
        with open_db(settings.db_path) as con:
            for p in FILES:
                server.expect_request(f"/{p.name}").respond_with_data(
                    p.read_bytes(), content_type="application/json" if p.suffix == ".json" else "application/xml")
                add_feed(con, FeedSpec(server.url_for(f"/{p.name}"), p.name, "news"))
        summary = run_ingest(settings, force=True, show_progress=False)
    finally:
        server.clear()
        server.stop()
    assert summary.failed == 0, summary.failures
    with open_db(settings.db_path) as con:
        rows = con.execute("""SELECT s.name, i.guid, i.url, i.published_utc, i.time_flags, i.title
                              FROM items i JOIN sources s USING (source_id)""").fetchall()
    by_file: dict[str, list[tuple]] = {}
    for name, *rest in rows:
        by_file.setdefault(name, []).append(tuple(rest))
    return by_file


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_entry_the_reference_reads_is_stored_alike(path, stored):
    ref = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
    rows = stored.get(path.name, [])
    if path.name in FEEDPARSER_READS_NONE:
        assert not ref.entries
        assert len(rows) == FEEDPARSER_READS_NONE[path.name]
        return
    assert ref.entries, "a fixture feedparser reads nothing from must be listed above, with why"
    by_guid = {r[0]: r for r in rows if r[0]}
    by_url = {r[1]: r for r in rows if r[1]}
    missing, wrong = [], []
    for e in ref.entries:
        row = by_guid.get((e.get("id") or "").strip()) or by_url.get((e.get("link") or "").strip())
        if row is None:
            missing.append(e.get("id") or e.get("link"))
            continue
        want = utc(e.get("published_parsed") or e.get("updated_parsed"))
        got = row[2].astimezone(UTC) if row[2] is not None else None
        reason = DIFFERENT_TIME.get((path.name, row[0]))
        if reason:
            assert reason in row[3], (row, reason)
        elif want is not None and got != want:
            wrong.append((row[0], got, want, row[3]))
    assert not missing, f"{len(missing)} of {len(ref.entries)} entries not stored: {missing[:5]}"
    assert not wrong, wrong[:5]
    assert len(rows) >= len({(e.get("id") or e.get("link")) for e in ref.entries})


def test_the_real_atom_feed_dated_only_by_updated_keeps_every_time(stored):
    rows = stored["2d032f37c86a9abc.xml"]
    assert len(rows) == 18 and all(r[2] is not None and "from_updated" in r[3] for r in rows)


def test_the_entities_fixture_keeps_what_a_reader_sees(stored):
    titles = {r[0]: r[4] for r in stored["synthetic-titles-and-entities.xml"]}
    assert titles == {"t1": "#include </etc/shadow> explained", "t2": "AT&T and Verizon & Sprint",
                      "t3": "The Post's scoop", "t4": "Café society", "t5": "R&D bold & more",
                      "t6": "Impossible offset"}
