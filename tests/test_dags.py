"""The DAGs: they import cleanly and cheaply, and each runs to success with dag.test()
against a loopback feed server and a temporary DuckDB file."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import duckdb
import pytest

from tests.conftest import FIXTURES, ROOT

DAGS = ROOT / "dags"
DAG_IDS = {"ingest_feeds", "ingest_events", "analyze_timing", "import_archive", "weekly_digest", "backfill_archive"}


@pytest.fixture(scope="session")
def dagbag():
    # Airflow puts the DAG bundle's folder on sys.path when it parses or runs DAGs; so do we.
    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_the_dag_folder_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


def test_every_dag_says_what_it_does_and_retries(dagbag):
    for dag in dagbag.dags.values():
        assert dag.doc_md and "Writes" in dag.doc_md or "writes" in dag.doc_md, dag.dag_id
        assert "media-timing" in dag.tags
        assert not dag.catchup
        for t in dag.tasks:
            assert t.retries >= 1, (dag.dag_id, t.task_id)
            assert t.execution_timeout is not None, (dag.dag_id, t.task_id)


def test_every_task_that_writes_takes_the_one_writer_pool(dagbag):
    writers = {("ingest_feeds", "load"), ("ingest_events", "load_and_import"),
               ("analyze_timing", "analyze"), ("import_archive", "load"), ("backfill_archive", "backfill"),
               ("weekly_digest", "send")}
    for dag_id, task_id in writers:
        task = dagbag.dags[dag_id].get_task(task_id)  # get_dag() would query the metadata DB
        assert task.pool == "duckdb_writer", (dag_id, task_id)
        assert task.retry_policy is not None


def test_every_task_that_opens_the_database_is_routed_to_its_one_worker(dagbag):
    """On Celery or Kubernetes the file is on one worker: its queue must carry every task but the
    fetches (which open no database), and those stay there too unless a shared queue is named."""
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            assert t.queue == "duckdb", (dag.dag_id, t.task_id, t.queue)


def test_the_fetch_queue_is_a_setting(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(DAGS)!r})
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS)!r})
        print(sorted({{(d, t.task_id, t.queue) for d, dag in bag.dags.items() for t in dag.tasks
                      if t.queue != "duckdb"}}))
    """)
    env = {**os.environ, "MEDIA_TIMING_FETCH_QUEUE": "fetchers"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == str(
        [("ingest_events", "fetch", "fetchers"), ("ingest_feeds", "fetch", "fetchers")]), out.stderr[-2000:]


def test_parsing_opens_no_socket_and_no_database(tmp_path):
    """Parse the folder in a fresh process where any connection attempt raises."""
    db = tmp_path / "never" / "x.duckdb"
    code = textwrap.dedent(f"""
        import socket, sys, time
        def refuse(*a, **k):
            raise RuntimeError("network at parse time")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        sys.path.insert(0, {str(DAGS)!r})
        t = time.perf_counter()
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS)!r})
        print(len(bag.dag_ids), len(bag.import_errors), round(time.perf_counter() - t, 2))
    """)
    env = {**os.environ, "MEDIA_TIMING_DB": str(db), "MEDIA_TIMING_DATA_DIR": str(tmp_path / "never")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    n_dags, n_errors, seconds = out.stdout.split()[-3:]
    assert (int(n_dags), int(n_errors)) == (len(DAG_IDS), 0), out.stderr[-2000:]
    assert not db.parent.exists()
    assert float(seconds) < 15  # includes importing Airflow itself


# --- dag.test() runs -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata database and the writer pool, once per session (about 10 s)."""
    env = os.environ.copy()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, "-m", "airflow", "pools", "set", "duckdb_writer", "1", "single DuckDB writer"],
                   check=True, capture_output=True, env=env)


@pytest.fixture
def media_env(tmp_path, monkeypatch):
    """Point the pipeline (which the tasks run in-process under dag.test) at a fresh DuckDB."""
    db = tmp_path / "dag.duckdb"
    monkeypatch.setenv("MEDIA_TIMING_DB", str(db))
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIA_TIMING_LOCK_WAIT_S", "10")
    return db


def states(dag_run) -> dict:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def query(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def register(db, name, url, role):
    from pipeline.sources.feeds import FeedSpec, add_feed
    from pipeline.store.database import open_db

    with open_db(db) as con:
        add_feed(con, FeedSpec(url, name, role))


def test_ingest_feeds_runs_and_announces_new_items(dagbag, airflow_db, media_env, httpserver):
    body = (FIXTURES / "feeds" / "4179e7a13df0f120.xml").read_bytes()
    httpserver.expect_request("/a.xml").respond_with_data(body, content_type="application/rss+xml")
    httpserver.expect_request("/b.xml").respond_with_data("gone", status=410)
    register(media_env, "a", httpserver.url_for("/a.xml"), "news")
    register(media_env, "b", httpserver.url_for("/b.xml"), "announcement")
    register(media_env, "leaks", httpserver.url_for("/leaks.xml"), "release")  # not this DAG's
    run = dagbag.get_dag("ingest_feeds").test()
    assert run.state == "success"
    got = states(run)
    assert got["load"] == "success" and got["announce"] == "success"
    assert query(media_env, "SELECT count(*) FROM items")[0][0] == 10
    fetched = dict(query(media_env, "SELECT s.name, f.status FROM fetches f JOIN sources s USING (source_id)"))
    assert fetched == {"a": "ok", "b": "failed"}  # one feed failing does not fail the run
    # Nothing new the second time: the run succeeds and does not announce.
    again = dagbag.get_dag("ingest_feeds").test()
    assert again.state == "success" and states(again)["announce"] == "skipped"
    assert query(media_env, "SELECT count(*) FROM items")[0][0] == 10


def test_ingest_events_imports_catalogs_and_release_feeds(dagbag, airflow_db, media_env, httpserver):
    events_dir = media_env.parent / "data" / "events"
    events_dir.mkdir(parents=True)
    shutil.copy(ROOT / "data" / "case_2016" / "timeline_2016.csv", events_dir)
    release_feed = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Leaks</title>'
                    b"<item><guid>r1</guid><title>Release one</title><pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item>"
                    b"<item><guid>r2</guid><title>No date</title></item></channel></rss>")
    httpserver.expect_request("/leaks.xml").respond_with_data(release_feed, content_type="application/rss+xml")
    register(media_env, "leaks", httpserver.url_for("/leaks.xml"), "release")
    run = dagbag.get_dag("ingest_events").test()
    assert run.state == "success" and states(run)["announce"] == "success"
    assert query(media_env, "SELECT count(*) FROM events WHERE catalog = 'timeline_2016.csv'")[0][0] == 66
    promoted = query(media_env, "SELECT kind, actor, title, ts_utc FROM events WHERE catalog = 'feed:leaks'")
    assert len(promoted) == 1 and promoted[0][:3] == ("leak_release", "leaks", "Release one")
    again = dagbag.get_dag("ingest_events").test()
    assert again.state == "success" and states(again)["announce"] == "skipped"


def test_analyze_timing_stores_each_claim_once(dagbag, airflow_db, media_env, case_db):
    shutil.copy(case_db, media_env)
    run = dagbag.get_dag("analyze_timing").test()
    assert run.state == "success" and states(run)["announce"] == "success"
    claims = {r[0] for r in query(media_env, "SELECT claim_id FROM analysis_runs")}
    assert claims == {"oct7_2016", "podesta_series", "all_releases"}
    again = dagbag.get_dag("analyze_timing").test()
    assert again.state == "success" and states(again)["announce"] == "skipped"
    assert query(media_env, "SELECT count(*) FROM analysis_runs")[0][0] == 3


def test_import_archive_loads_a_stream_from_its_form(dagbag, airflow_db, media_env):
    conf = {"file": str(ROOT / "data" / "case_2016" / "clinton_tweets_2016.csv.gz"), "source": "clinton",
            "role": "announcement", "time_column": "created_at_utc", "text_column": "text"}
    run = dagbag.get_dag("import_archive").test(run_conf=conf)
    assert run.state == "success"
    assert query(media_env, "SELECT count(*) FROM v_items WHERE source = 'clinton'")[0][0] == 1599


def test_import_archive_fails_clearly_on_a_bad_file(dagbag, airflow_db, media_env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,text\n2016-10-07T20:00:00Z,hi\n")
    conf = {"file": str(bad), "source": "s", "role": "news", "time_column": "time", "text_column": "text"}
    run = dagbag.get_dag("import_archive").test(run_conf=conf)
    assert run.state == "failed"
    assert states(run)["load"] == "failed"


def test_weekly_digest_sends_through_the_smtp_default_connection(dagbag, airflow_db, media_env, case_db, monkeypatch):
    import email as email_lib
    import email.policy
    import socket

    from aiosmtpd.controller import Controller

    received = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            received.append(email_lib.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    shutil.copy(case_db, media_env)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "digest@example.org", "timeout": 5}}))
    monkeypatch.setenv("AIRFLOW_VAR_MEDIA_TIMING_DIGEST_TO", "editor@example.org")
    try:
        run = dagbag.get_dag("weekly_digest").test(run_conf={"week": "2016-W40"})
        assert run.state == "success" and states(run)["send"] == "success"
        again = dagbag.get_dag("weekly_digest").test(run_conf={"week": "2016-W40"})
        assert again.state == "success"
    finally:
        controller.stop()
    assert len(received) == 1  # the second run found the week already sent
    msg = received[0]
    assert msg["From"] == "digest@example.org" and msg["To"] == "editor@example.org"
    assert "2016-W40" in msg["Subject"]
    assert query(media_env, "SELECT week, status FROM digests") == [("2016-W40", "sent")]


def test_backfill_archive_maps_one_task_per_url_and_per_slot(dagbag, airflow_db, media_env, httpserver):
    from datetime import UTC, datetime, timedelta

    from pipeline.sources.wayback_client import ts14
    from tests.test_gdelt import gkg, zipped
    from tests.test_wayback import FEED, rss
    from tests.wayback_fake import FakeWayback

    fake = FakeWayback()
    try:
        t0 = datetime(2016, 10, 6, tzinfo=UTC)
        for h in (2, 5, 9):
            fake.archive.add_capture(FEED, ts14(t0 + timedelta(hours=h)),
                                     rss([(f"s{i}", t0 + timedelta(hours=i)) for i in range(h)][-3:]))
        conf = {"kind": "wayback", "urls": [FEED, "http://www.example-news.com/other.xml"], "start": "2016-10-06",
                "end": "2016-10-06", "cdx_endpoint": fake.cdx, "playback_endpoint": fake.playback}
        run = dagbag.get_dag("backfill_archive").test(run_conf=conf)
    finally:
        fake.close()
    assert run.state == "success", states(run)
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "backfill"]
    assert len(mapped) == 2 and states(run)["announce"] == "success"
    got = query(media_env, "SELECT guid, list_contains(time_flags, 'window_overflow') FROM v_items "
                           "WHERE source = 'wayback:example-news.com' ORDER BY guid")
    # A feed of three: each capture after the first shares nothing with the one before, so what
    # it brought may have had unseen neighbours (s5 was pushed out unseen): flagged, not trusted.
    assert got == [(f"s{i}", i >= 2) for i in (0, 1, 2, 3, 4, 6, 7, 8)]
    label = "20161007200000"
    httpserver.expect_request(f"/g/{label}.gkg.csv.zip").respond_with_data(
        zipped(gkg("https://example.com/a", "example.com", label, "A headline", None) + "\n"))
    httpserver.expect_request("/g/20161007201500.gkg.csv.zip").respond_with_data("", status=404)
    conf = {"kind": "gdelt", "start": "2016-10-07T19:50Z", "end": "2016-10-07T20:10Z", "tables": ["gkg"],
            "base_url": httpserver.url_for("/g")}
    run = dagbag.get_dag("backfill_archive").test(run_conf=conf)
    assert run.state == "success", states(run)
    assert len([ti for ti in run.get_task_instances() if ti.task_id == "backfill"]) == 2  # 20:00 and 20:15
    rows = query(media_env, "SELECT label, status FROM gdelt_files ORDER BY label")
    assert rows == [(label, "ok"), ("20161007201500", "missing")]


# --- trigger forms ---------------------------------------------------------------------------

REQUIRED_PARAMS = {"import_archive": {"file", "source", "time_column", "text_column"},
                   "backfill_archive": {"start", "end"}}


def _accepts(param, value) -> bool:
    import copy

    try:
        copy.copy(param).resolve(value)
        return True
    except Exception:
        return False


def test_every_form_can_be_sent_with_only_its_required_fields(dagbag):
    """What the UI sends for fields left empty (null) must pass, and each optional field says what
    empty means; only the fields listed as required may refuse it."""
    for dag in dagbag.dags.values():
        required = REQUIRED_PARAMS.get(dag.dag_id, set())
        for name, param in dag.params.items():
            param = dag.params.get_param(name)
            if name in required:
                assert not _accepts(param, None) and not _accepts(param, ""), (dag.dag_id, name)
                continue
            assert _accepts(param, None), (dag.dag_id, name, "an empty field must be accepted")
            assert "Empty" in (param.description or ""), (dag.dag_id, name, "say what empty means")
            if "enum" not in param.schema:
                assert _accepts(param, ""), (dag.dag_id, name)
        filled = {"file": "/x.csv", "source": "s", "time_column": "t", "text_column": "x",
                  "start": "2016-10-06", "end": "2016-10-08"}
        conf = {k: v for k, v in filled.items() if k in required}
        merged = {name: conf.get(name, dag.params.get_param(name).value) for name in dag.params}
        for name, value in merged.items():
            assert _accepts(dag.params.get_param(name), value), (dag.dag_id, name, value)
