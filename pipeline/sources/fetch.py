"""Fetching feeds over HTTP: bytes plus the facts of the exchange, never a half-read body.

libcurl (through pycurl) runs every transfer of a poll from one thread (a background one, or
the caller's), its multi interface keeping the connections alive and pooled. Every transfer has a connect timeout, a read
timeout (no byte for that long) *and* a total deadline (a server trickling a byte at a time
cannot outlast it), a maximum body size, redirects followed (http and https only) with the final
URL recorded, conditional GET (ETag, Last-Modified), and Retry-After honoured on 429/503. A
body cut short is a failed fetch. At most ``per_host`` transfers are in flight per host, and
at most ``workers`` in all; a transfer's clock starts when it leaves the queue.

Why libcurl and not requests: on 1,000 loopback polls (bench/ingest.py), requests spent about
0.8 ms of CPU per conditional GET answered 304, libcurl about 0.12 ms; an unchanged re-poll
could not be ten times cheaper than a first poll while the HTTP client cost that much.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pycurl

from pipeline.sources.addresses import UnsupportedURL, check_url, forbidden, host_of
from pipeline.sources.feed_text import strip_controls

USER_AGENT = ("media-timing/0.1 (news-timing research; +https://github.com/media-timing/media-timing)")
ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
MAX_REDIRECTS = 10
BUFFER_BYTES = 128 * 1024  # per transfer: fewer, larger write callbacks for big feeds
IDLE_WAIT_S = 0.1  # longest wait between curl's checks of its timers (see _Transfers.rounds)


@dataclass(frozen=True)
class FeedRequest:
    """What a fetcher needs to poll one feed: plain values, so it can travel through XCom."""

    source_id: int
    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None


@dataclass(frozen=True)
class Limits:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0  # libcurl counts it in whole seconds: 0.5 acts as 1
    deadline_s: float = 60.0
    max_bytes: int = 20 * 1024 * 1024
    # Networks feeds may reach although they are loopback, private, link-local... (see forbidden)
    allow_networks: tuple = ()


@dataclass
class FetchOutcome:
    """One HTTP exchange. ``status`` is fetched (a body to parse), not_modified, unchanged
    (same body hash as last time), or failed; parsing returns a new outcome (ok, not_a_feed) and
    never edits this one."""

    request: FeedRequest
    fetch_key: str
    started_utc: datetime
    status: str
    http_status: int | None = None
    final_url: str | None = None
    body: bytes | None = field(default=None, repr=False)
    bytes: int = 0
    latency_ms: float = 0.0
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    retry_after_utc: datetime | None = None
    error: str | None = None
    headers: dict = field(default_factory=dict, repr=False)  # the final response's, names lower-cased
    complete_length: bool = False  # the server said how long the body was, and we got all of it


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After is seconds or an HTTP date; anything else is ignored. Capped at a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=min(int(value), 86400))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when, now), now + timedelta(days=1))


def _ca_bundle() -> str | None:
    """libcurl's wheel was built for another distribution's certificate path: name one."""
    for var in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


# --- one transfer ----------------------------------------------------------------------------

class _Transfer:
    """The state of one request while libcurl runs it: headers and body as they arrive."""

    def __init__(self, req: FeedRequest, limits: Limits):
        self.req, self.limits = req, limits
        self.out = FetchOutcome(req, uuid.uuid4().hex, datetime.now(UTC), "failed")
        self.t0 = time.monotonic()
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_big = False
        self.headers: dict[str, str] = {}
        self.reason = ""
        self.got_response = False
        self.refused: str | None = None  # the address we would not connect to, and why

    def open_socket(self, purpose, address):
        """libcurl's socket(2): refuse addresses feeds may not reach (server-side request forgery)."""
        ip = ipaddress.ip_address(address.addr[0])
        kind = forbidden(ip, self.limits.allow_networks)
        if kind:
            self.refused = f"{ip} is a {kind} address"
            return pycurl.SOCKET_BAD
        return socket.socket(address.family, address.socktype, address.protocol)

    def on_header(self, line: bytes) -> None:
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text.startswith("HTTP/"):  # a new response (after a redirect): forget the last one's
            self.headers, self.got_response = {}, True
            parts = text.split(" ", 2)
            self.reason = strip_controls(parts[2].strip()) if len(parts) > 2 else ""
        elif ":" in text:
            name, value = text.split(":", 1)
            self.headers[name.strip().lower()] = value.strip()

    def on_body(self, chunk: bytes) -> int | None:
        self.size += len(chunk)
        if self.size > self.limits.max_bytes:
            self.too_big = True
            return 0  # anything but len(chunk) aborts the transfer
        self.chunks.append(chunk)
        return None

    def configure(self, c: pycurl.Curl) -> None:
        """What changes from one transfer to the next (see _new_handle for what does not)."""
        req = self.req
        headers = [f"Accept: {ACCEPT}"]
        if req.etag:
            headers.append(f"If-None-Match: {req.etag}")
        if req.last_modified:
            headers.append(f"If-Modified-Since: {req.last_modified}")
        c.setopt(pycurl.URL, req.url)
        c.setopt(pycurl.HTTPHEADER, headers)
        c.setopt(pycurl.WRITEFUNCTION, self.on_body)
        c.setopt(pycurl.HEADERFUNCTION, self.on_header)
        c.setopt(pycurl.OPENSOCKETFUNCTION, self.open_socket)

    def finish(self, c: pycurl.Curl, errno: int, message: str) -> FetchOutcome:
        out, req = self.out, self.req
        out.latency_ms = (time.monotonic() - self.t0) * 1000
        out.final_url = c.getinfo(pycurl.EFFECTIVE_URL) or req.url
        out.headers = self.headers
        code = c.getinfo(pycurl.RESPONSE_CODE) or None
        if errno:
            out.http_status = None if errno == pycurl.E_TOO_MANY_REDIRECTS else code
            out.error = self._error(errno, message)
            return out
        out.http_status = code
        h = self.headers
        out.etag = h.get("etag") or (req.etag if code == 304 else None)
        out.last_modified = h.get("last-modified") or (req.last_modified if code == 304 else None)
        if code == 304:
            out.status, out.body_sha256 = "not_modified", req.body_sha256
            return out
        if code in (429, 503):
            out.retry_after_utc = parse_retry_after(h.get("retry-after"), out.started_utc)
        if code is None or not 200 <= code < 300:
            out.error = f"HTTP {code} {self.reason}".strip()
            return out
        body = b"".join(self.chunks)
        out.body, out.bytes = body, len(body)
        out.body_sha256 = hashlib.sha256(body).hexdigest()
        # libcurl fails a transfer that ends before its Content-Length, so having one means complete.
        out.complete_length = h.get("content-length", "").isdigit()
        out.status = "unchanged" if out.body_sha256 == req.body_sha256 else "fetched"
        return out

    def _error(self, errno: int, message: str) -> str:
        return strip_controls(self._explain(errno, message))

    def _explain(self, errno: int, message: str) -> str:
        limits = self.limits
        if self.refused:
            return (f"refused: {self.refused}, which feeds may not reach (allow a network with "
                    "MEDIA_TIMING_FETCH_ALLOW_NETWORKS)")
        if self.too_big or errno == pycurl.E_FILESIZE_EXCEEDED:
            return f"body larger than {limits.max_bytes:,} bytes"
        if errno == pycurl.E_TOO_MANY_REDIRECTS:
            return f"redirect loop (more than {MAX_REDIRECTS} redirects)"
        if errno == pycurl.E_OPERATION_TIMEDOUT:
            if "too slow" in message:
                return f"read timeout after {limits.read_timeout_s:g} s"
            if "connect" in message.lower() or message.startswith("Resolving timed out"):
                return f"connect timeout after {limits.connect_timeout_s:g} s"
            where = " while reading the body" if self.got_response else ""
            return f"deadline of {limits.deadline_s:g} s exceeded{where}"
        if errno in (pycurl.E_PARTIAL_FILE, pycurl.E_RECV_ERROR) and self.got_response:
            return f"body cut short: {message}"
        if errno == pycurl.E_BAD_CONTENT_ENCODING:
            return f"body undecodable: {message}"
        if errno in (pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CONNECT_ERROR):
            return f"TLS failed: {message}"
        if errno == pycurl.E_UNSUPPORTED_PROTOCOL:
            return f"refused: only http and https are fetched or followed ({message})"
        if errno in (pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_RESOLVE_PROXY,
                     pycurl.E_GOT_NOTHING, pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR):
            return f"connection failed: {message}"
        return f"request failed: {message} (curl error {errno})"


def _new_handle(limits: Limits, ca_bundle: str | None) -> pycurl.Curl:
    """A handle with every option that is the same for all transfers of a poll."""
    c = pycurl.Curl()
    http = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
    for opt, value in (
        (pycurl.NOSIGNAL, 1), (pycurl.USERAGENT, USER_AGENT), (pycurl.ACCEPT_ENCODING, "gzip, deflate"),
        (pycurl.PROTOCOLS, http), (pycurl.REDIR_PROTOCOLS, http),
        (pycurl.FOLLOWLOCATION, 1), (pycurl.MAXREDIRS, MAX_REDIRECTS),
        (pycurl.CONNECTTIMEOUT_MS, max(1, int(limits.connect_timeout_s * 1000))),
        (pycurl.TIMEOUT_MS, max(1, int(limits.deadline_s * 1000))),
        # No byte for read_timeout_s seconds (waiting for the answer included) is a read timeout.
        (pycurl.LOW_SPEED_LIMIT, 1), (pycurl.LOW_SPEED_TIME, max(1, math.ceil(limits.read_timeout_s))),
        (pycurl.MAXFILESIZE_LARGE, limits.max_bytes), (pycurl.BUFFERSIZE, BUFFER_BYTES),
    ):
        c.setopt(opt, value)
    if ca_bundle:
        c.setopt(pycurl.CAINFO, ca_bundle)
    return c


# --- a poll's worth of transfers -------------------------------------------------------------

class _Transfers:
    """Feeds queued per host and started round-robin across hosts as slots free up."""

    def __init__(self, requests: Iterable[FeedRequest], limits: Limits, workers: int, per_host: int):
        self.limits, self.workers, self.per_host = limits, max(1, workers), max(1, per_host)
        self.pending: dict[str, deque[FeedRequest]] = defaultdict(deque)
        for r in requests:
            self.pending[host_of(r.url)].append(r)
        self.ready = deque(self.pending)  # hosts with a queued feed and a free slot
        self.in_flight: dict[str, int] = defaultdict(int)
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_MAXCONNECTS, max(16, self.workers))
        self.spare: list[pycurl.Curl] = []
        self.running: dict[pycurl.Curl, tuple[str, _Transfer]] = {}
        self._done: list[FetchOutcome] = []
        self.ca_bundle = _ca_bundle()

    def _fill(self) -> None:
        while self.ready and len(self.running) < self.workers:
            host = self.ready.popleft()
            req = self.pending[host].popleft()
            try:
                check_url(req.url)
            except UnsupportedURL as exc:  # never reaches the network: a failure, recorded
                self._done.append(FetchOutcome(req, uuid.uuid4().hex, datetime.now(UTC), "failed", error=str(exc)))
            else:
                t = _Transfer(req, self.limits)
                c = self.spare.pop() if self.spare else _new_handle(self.limits, self.ca_bundle)
                t.configure(c)
                self.multi.add_handle(c)
                self.running[c] = (host, t)
                self.in_flight[host] += 1
            if self.pending[host] and self.in_flight[host] < self.per_host:
                self.ready.append(host)

    def _release(self, c: pycurl.Curl, errno: int, message: str) -> None:
        host, t = self.running.pop(c)
        self.multi.remove_handle(c)
        self._done.append(t.finish(c, errno, message))
        self.spare.append(c)  # kept configured: the next transfer sets only what differs
        self.in_flight[host] -= 1
        if self.pending[host] and self.in_flight[host] == self.per_host - 1:
            self.ready.append(host)  # it was full; it has a free slot again

    def rounds(self) -> Iterator[list[FetchOutcome]]:
        """Drive the transfers, yielding what finished in each round (a tenth of a second at
        most), until all are done."""
        try:
            self._fill()
            while True:
                while self.multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                    pass
                while True:
                    left, ok, failed = self.multi.info_read()
                    for c in ok:
                        self._release(c, 0, "")
                    for c, errno, message in failed:
                        self._release(c, errno, message)
                    if not left:
                        break
                self._fill()
                done, self._done = self._done, []
                yield done  # every round, empty or not, so that a consumer can stop between them
                if not self.running and not self.ready:
                    return
                # select() waits on the sockets; the cap keeps curl's timers checked even where
                # it cannot watch a socket (descriptors past FD_SETSIZE).
                wait = self.multi.timeout()
                self.multi.select(IDLE_WAIT_S if wait < 0 else min(wait / 1000, IDLE_WAIT_S))
        finally:
            for c in list(self.running):
                self.multi.remove_handle(c)
                c.close()
            for c in self.spare:
                c.close()
            self.multi.close()


_END = object()


def fetch_all(requests: Iterable[FeedRequest], limits: Limits = Limits(), *, workers: int = 32,
              per_host: int = 2, background: bool = True) -> Iterator[FetchOutcome]:
    """Fetch every feed, yielding each outcome as it completes. Never raises for network or
    HTTP trouble: that is a failed outcome.

    With ``background`` the transfers run in their own thread (libcurl releases the GIL while it
    waits), so the caller's work on one body overlaps the next ones; without it they advance
    only between the caller's steps, and the process stays single-threaded (safe to fork).
    """
    transfers = _Transfers(requests, limits, workers, per_host)
    if not background:
        for done in transfers.rounds():
            yield from done
        return
    results: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def run():
        rounds = transfers.rounds()
        try:
            for done in rounds:
                if stop.is_set():
                    break
                if done:
                    results.put(done)  # one hand-over per round, not one per feed
        except BaseException as exc:  # handed to the caller, not lost in a thread
            results.put(exc)
        finally:
            rounds.close()
            results.put(_END)

    thread = threading.Thread(target=run, name="media-timing-fetch", daemon=True)
    thread.start()
    try:
        while (item := results.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        thread.join()
