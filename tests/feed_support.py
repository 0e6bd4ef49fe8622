"""What the feed tests share: settings on loopback, servers that misbehave on purpose, and
small readers of the database."""

import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from werkzeug import Response

from pipeline.config import Settings
from pipeline.sources.feeds import FeedSpec, add_feed
from pipeline.sources.ingest import run_ingest
from pipeline.store.database import open_db
from tests.conftest import FIXTURES, LOOPBACK

FEED = FIXTURES / "feeds" / "4179e7a13df0f120.xml"  # RSS 2.0, 10 items


BIG = FIXTURES / "feeds" / "14dda539770f94e3.xml"  # RSS 1.0, 141 items, 124 KB


@pytest.fixture
def settings(tmp_path):
    return Settings(
        db_path=tmp_path / "feeds.duckdb",
        data_dir=tmp_path / "data",
        lock_wait_s=5,
        fetch_connect_timeout_s=2,
        fetch_read_timeout_s=1,
        fetch_deadline_s=2,
        fetch_max_bytes=2_000_000,
        fetch_workers=8,
        fetch_per_host=2,
        poll_minutes=15,
        max_failures=3,
        fetch_allow_networks=LOOPBACK,
    )


def register(settings, name, url, role="news"):
    with open_db(settings.db_path) as con:
        add_feed(con, FeedSpec(url, name, role))


def ingest(settings, **kw):
    return run_ingest(settings, force=kw.pop("force", True), show_progress=False, **kw)


def rows(settings, sql, params=None):
    with open_db(settings.db_path) as con:
        return con.execute(sql, params or []).fetchall()


def last_fetch(settings, name):
    return rows(
        settings,
        """SELECT status, http_status, error, bozo, bozo_reason, items_new, items_seen,
                                    final_url, retry_after_utc
                             FROM fetches JOIN sources USING (source_id) WHERE name = ?
                             ORDER BY fetch_id DESC LIMIT 1""",
        [name],
    )[0]


def channel(items: str, title="T") -> bytes:
    """An RSS 2.0 document around the given <item> elements."""
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>{items}</channel></rss>'.encode()


def rss(items: list[tuple[str, str]], title="T") -> bytes:
    return channel(
        "".join(
            f"<item><guid>{g}</guid><title>{t}</title><pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item>"
            for g, t in items
        ),
        title,
    )


def item_count(settings):
    return rows(settings, "SELECT count(*) FROM items")[0][0]


@pytest.fixture
def raw_server():
    """Serve canned raw HTTP responses, one per connection, then close."""
    responses = []
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                sock.settimeout(0.2)
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                step = responses.pop(0) if len(responses) > 1 else responses[0]
                try:
                    step(conn)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml", responses
    stop.set()
    t.join(2)
    sock.close()


def send(raw: bytes):
    return lambda conn: conn.sendall(raw)


@pytest.fixture
def threaded_httpserver():
    from pytest_httpserver import HTTPServer

    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def tls_server(tmp_path):
    """A loopback HTTPS server with a self-signed certificate; yields the server and the
    certificate's path (to trust it, or not)."""
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from pytest_httpserver import HTTPServer

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = HTTPServer(host="localhost", ssl_context=context)
    server.start()
    yield server, cert_path
    server.clear()
    server.stop()


def hold_write_lock(db, seconds):
    """Another process holding the database for writing (an analyst's writable session)."""
    code = textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(db)!r})
        print("locked", flush=True)
        time.sleep({seconds})
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    return {int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == pid}


def _start_poll(settings):
    env = {
        **os.environ,
        "MEDIA_TIMING_DB": str(settings.db_path),
        "MEDIA_TIMING_DATA_DIR": str(settings.data_dir),
        "MEDIA_TIMING_FETCH_PROCESSES": "2",
        "MEDIA_TIMING_FETCH_PER_HOST": "20",
        "MEDIA_TIMING_FETCH_DEADLINE_S": "30",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "ingest", "feeds", "--force", "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    parsers = _children(proc.pid)
    assert len(parsers) >= 2, proc.communicate(timeout=30)
    return proc, parsers


@pytest.fixture
def slow_feeds(settings, threaded_httpserver):
    """20 feeds: the first answers at once (so parsers are forked), the rest only after 4 s."""
    body = FEED.read_bytes()

    def handler(request):
        if not request.path.endswith("/0.xml"):
            time.sleep(4)
        return Response(body, content_type="application/rss+xml")

    threaded_httpserver.expect_request(re.compile(r"/\d+\.xml")).respond_with_handler(handler)
    for i in range(20):
        register(settings, f"f{i}", threaded_httpserver.url_for(f"/{i}.xml"))
    return settings


def many_feeds(settings, httpserver, n=20):
    """n feeds cycled from the fixture files, plus one whose items have neither guid nor link."""
    files = sorted((FIXTURES / "feeds").glob("*.xml"))
    for i in range(n):
        httpserver.expect_request(f"/f{i}.xml").respond_with_data(
            files[i % len(files)].read_bytes(), content_type="application/xml"
        )
        register(settings, f"f{i}", httpserver.url_for(f"/f{i}.xml"))
    bare = channel(
        "<item><title>same</title><pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item>"
        "<item><title>same</title><pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item>"
        "<item><title>other</title><pubDate>Fri, 07 Oct 2016 20:33:00 +0000</pubDate></item>"
    )
    httpserver.expect_request("/bare.xml").respond_with_data(bare, content_type="application/xml")
    register(settings, "bare", httpserver.url_for("/bare.xml"))


def spy_on_parsers(monkeypatch, tmp_path, die_as=None):
    """Each parser process leaves a file named for its pid; ``die_as`` parser exits at once."""

    from pipeline.sources import parsers

    real = parsers.parse_worker
    marks = tmp_path / "parsers"
    marks.mkdir()

    def spy(tasks, results, items_path, i, parent):
        (marks / str(os.getpid())).touch()
        if i == die_as:
            os._exit(3)  # as the OOM killer would end it: no report, no cleanup
        real(tasks, results, items_path, i, parent)

    monkeypatch.setattr(parsers, "parse_worker", spy)
    return marks
