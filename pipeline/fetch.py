"""Fetching feeds over HTTP: bytes plus the facts of the exchange, never a half-read body.

One pooled requests session. Every fetch has connect and read timeouts *and* a total deadline
(requests' read timeout is per socket read, so a server trickling a byte at a time would defeat
it), a maximum body size, redirects followed with the final URL recorded, conditional GET
(ETag, Last-Modified), and Retry-After honoured on 429/503. A body cut short is a failed fetch.
"""

from __future__ import annotations

import email.utils
import hashlib
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

USER_AGENT = ("media-timing/0.1 (news-timing research; +https://github.com/media-timing/media-timing)")
ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
READ_CHUNK = 64 * 1024
MAX_REDIRECTS = 10


class UnsupportedURL(ValueError):
    pass


def check_url(url: str) -> str:
    """Only http and https: a feed URL can't make us read files or talk other protocols."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UnsupportedURL(f"{url!r} is not an http(s) URL; only http and https feeds are polled")
    return url.strip()


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


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
    read_timeout_s: float = 20.0
    deadline_s: float = 60.0
    max_bytes: int = 20 * 1024 * 1024


@dataclass
class FetchOutcome:
    """One HTTP exchange. ``status`` is fetched (a body to parse), not_modified, unchanged
    (same body hash as last time), or failed; parsing may later turn fetched into ok/not_a_feed."""

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
    headers: dict = field(default_factory=dict, repr=False)
    complete_length: bool = False  # the server said how long the body was, and we got all of it


def make_session(workers: int = 32, per_host: int = 2) -> requests.Session:
    s = requests.Session()
    # trust_env makes requests re-read proxy variables and ~/.netrc on every request (a fifth of
    # its CPU per poll); read the proxies once instead. no_proxy keeps working through the dict.
    s.trust_env = False
    s.proxies.update(urllib.request.getproxies())
    s.headers.update({"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"})
    adapter = HTTPAdapter(pool_connections=max(workers, 10), pool_maxsize=max(per_host, 1), max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.max_redirects = MAX_REDIRECTS
    return s


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


class _Failed(Exception):
    pass


def _read_body(r: requests.Response, started: float, limits: Limits) -> bytes:
    chunks, total = [], 0
    # read1 returns whatever has arrived, so the deadline is checked even against a trickle.
    while True:
        if time.monotonic() - started > limits.deadline_s:
            raise _Failed(f"deadline of {limits.deadline_s:g} s exceeded while reading the body")
        chunk = r.raw.read1(READ_CHUNK, decode_content=True)
        if not chunk:
            break
        total += len(chunk)
        if total > limits.max_bytes:
            raise _Failed(f"body larger than {limits.max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_feed(session: requests.Session, req: FeedRequest, limits: Limits = Limits()) -> FetchOutcome:
    """Poll one feed. Never raises for network or HTTP trouble: that is a failed outcome."""
    started_utc = datetime.now(UTC)
    out = FetchOutcome(req, uuid.uuid4().hex, started_utc, "failed")
    t0 = time.monotonic()
    headers = {}
    if req.etag:
        headers["If-None-Match"] = req.etag
    if req.last_modified:
        headers["If-Modified-Since"] = req.last_modified
    try:
        check_url(req.url)
        with session.get(req.url, headers=headers, stream=True,
                         timeout=(limits.connect_timeout_s, limits.read_timeout_s)) as r:
            out.http_status = r.status_code
            out.final_url = r.url
            out.headers = dict(r.headers)
            out.etag = r.headers.get("ETag") or (req.etag if r.status_code == 304 else None)
            out.last_modified = r.headers.get("Last-Modified") or (req.last_modified if r.status_code == 304 else None)
            if r.status_code == 304:
                out.status = "not_modified"
                out.body_sha256 = req.body_sha256
                _reuse_connection(r)
                return out
            if r.status_code in (429, 503):
                out.retry_after_utc = parse_retry_after(r.headers.get("Retry-After"), started_utc)
            if r.status_code >= 400:
                raise _Failed(f"HTTP {r.status_code} {r.reason or ''}".strip())
            body = _read_body(r, t0, limits)
            declared = r.headers.get("Content-Length")
            if declared and declared.isdigit() and r.raw.tell() < int(declared):
                raise _Failed(f"body cut short: {r.raw.tell():,} of {int(declared):,} bytes")
            out.complete_length = bool(declared and declared.isdigit())
            _reuse_connection(r)
            out.body = body
            out.bytes = len(body)
            out.body_sha256 = hashlib.sha256(body).hexdigest()
            out.status = "unchanged" if out.body_sha256 == req.body_sha256 else "fetched"
    except _Failed as exc:
        out.error = str(exc)
    except requests.exceptions.TooManyRedirects:
        out.error = f"redirect loop (more than {MAX_REDIRECTS} redirects)"
    except requests.exceptions.ConnectTimeout:
        out.error = f"connect timeout after {limits.connect_timeout_s:g} s"
    except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
        out.error = f"read timeout after {limits.read_timeout_s:g} s"
    # Reading the body through urllib3 directly (read1, for the deadline), its errors come unwrapped.
    except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError) as exc:
        out.error = f"body cut short: {_short(exc)}"
    except (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError) as exc:
        out.error = f"body undecodable: {_short(exc)}"
    except requests.exceptions.ConnectionError as exc:
        out.error = f"connection failed: {_short(exc)}"
    except (requests.exceptions.RequestException, UnsupportedURL) as exc:
        out.error = f"request failed: {_short(exc)}"
    finally:
        out.latency_ms = (time.monotonic() - t0) * 1000
    return out


def _reuse_connection(r: requests.Response) -> None:
    """Hand a fully read connection back to the pool (keep-alive). Reading through ``r.raw``
    bypasses requests' bookkeeping, and its close() would otherwise shut the socket."""
    r._content_consumed = True
    r.raw.release_conn()


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."
