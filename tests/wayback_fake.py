"""A loopback Internet Archive: the CDX API (output=json, resume keys) and `id_` playback.

Two kinds of content: the recorded cassettes in tests/fixtures/wayback/ (real CDX answers,
converted from the recorded text form to the JSON form the client asks for, page by page along
their resume keys, and the real 403 of a blocked URL), and scripted captures of a feed (bodies
and rows the test writes: revisits, error pages, redirects, impossible timestamps). Faults on
demand: 429 with Retry-After for the first N CDX requests.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

CASSETTES = Path(__file__).parent / "fixtures" / "wayback"
HEADER = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"]


def _body(response: dict) -> bytes:
    body = response["body"]["string"]
    if isinstance(body, str):
        body = body.encode()
    try:
        return gzip.decompress(body)
    except OSError:
        return body


def cassette_pages(name: str) -> list[tuple[str | None, list[list[str]], str | None, int, bytes]]:
    """(resume key asked for, rows, resume key given, status, raw body) per recorded exchange."""
    doc = yaml.safe_load((CASSETTES / name).read_text())
    pages = []
    for it in doc["interactions"]:
        q = parse_qs(urlsplit(it["request"]["uri"]).query)
        asked = q.get("resumeKey", [None])[0]
        raw = _body(it["response"])
        status = it["response"]["status"]["code"]
        lines = raw.decode("utf-8", "replace").split("\n")
        key = None
        if len(lines) >= 3 and lines[-1] == "" and lines[-3] == "":
            key, lines = unquote(lines[-2]), lines[:-3]
        rows = [ln.split(" ") for ln in lines if ln.strip() and status == 200]
        pages.append((unquote(asked) if asked else None, rows, key, status, raw))
    return pages


def digest_of(body: bytes) -> str:
    return base64.b32encode(hashlib.sha1(body).digest()).decode()


@dataclass
class Archive:
    """What the fake serves; tests edit it between runs."""

    captures: dict[str, list[list[str]]] = field(default_factory=dict)  # url -> CDX rows (no header)
    bodies: dict[tuple[str, str], tuple[int, bytes, dict]] = field(default_factory=dict)  # (ts, url) -> answer
    cassettes: dict[str, str] = field(default_factory=dict)  # url -> cassette file name
    throttle: int = 0  # answer the next N CDX requests with 429
    retry_after: str = "1"
    log: list[str] = field(default_factory=list)
    page_size: int = 1000

    def add_capture(self, url: str, ts: str, body: bytes | None, *, status: str = "200",
                    mimetype: str = "application/rss+xml", digest: str | None = None,
                    playback: tuple[int, bytes, dict] | None = None) -> None:
        d = digest or (digest_of(body) if body is not None else "-")
        self.captures.setdefault(url, []).append(["x", ts, url, mimetype, status, d, "100"])
        if playback is not None:
            self.bodies[(ts, url)] = playback
        elif body is not None:
            self.bodies[(ts, url)] = (200, body, {"Content-Type": mimetype})


class FakeWayback:
    def __init__(self) -> None:
        self.archive = Archive()
        archive = self.archive

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                archive.log.append(self.path)
                parts = urlsplit(self.path)
                if parts.path == "/cdx/search/cdx":
                    return self._cdx(parse_qs(parts.query))
                if parts.path.startswith("/web/"):
                    ts, _, original = parts.path[len("/web/"):].partition("/")
                    original = original + ("?" + parts.query if parts.query else "")
                    answer = archive.bodies.get((ts.removesuffix("id_"), original))
                    if answer is None:
                        return self._send(404, b"not in this archive")
                    return self._send(*answer)
                return self._send(404, b"")

            def _cdx(self, q):
                if archive.throttle > 0:
                    archive.throttle -= 1
                    return self._send(429, b"Too Many Requests", {"Retry-After": archive.retry_after})
                url = q["url"][0]
                key = q.get("resumeKey", [None])[0]
                if url in archive.cassettes:
                    for asked, rows, given, status, raw in cassette_pages(archive.cassettes[url]):
                        if asked == key:
                            if status != 200:
                                return self._send(status, raw)
                            doc = [HEADER, *rows] + ([[], [given]] if given else [])
                            return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
                    return self._send(400, b"unknown resume key")
                start, end = q.get("from", ["0"])[0].ljust(14, "0"), q.get("to", ["9"])[0].ljust(14, "9")
                rows = [r for r in archive.captures.get(url, []) if start <= r[1] <= end]
                rows.sort(key=lambda r: r[1])
                at = int(key or 0)
                page = rows[at:at + archive.page_size]
                more = at + archive.page_size < len(rows)
                doc = [HEADER, *page] + ([[], [str(at + archive.page_size)]] if more else [])
                return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.base = f"http://{host}:{port}"
        self.cdx = f"{self.base}/cdx/search/cdx"
        self.playback = f"{self.base}/web"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
