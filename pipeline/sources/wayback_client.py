"""A polite client of the Internet Archive: the CDX capture list and `id_` playback.

`requests` with a Session: a backfill makes a few requests a minute, so throughput is not the
problem; being blocked is. The CDX server allows about 24 requests a minute per network and
answers more with 429; ignoring those gets the network blocked for an hour, doubling on
repeats. So: at most ``per_minute`` CDX requests a minute, a 429 honoured with its
``Retry-After`` and a growing back-off, and after ``max_429`` of them in a row the run stops
(``ArchiveRefused``) rather than push on; what was done is in the ledger and a rerun resumes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pipeline.errors import Unavailable, UserError

CDX_ENDPOINT = "https://web.archive.org/cdx/search/cdx"
PLAYBACK_ENDPOINT = "https://web.archive.org/web"
USER_AGENT = ("media-timing/0.1 (historical feed backfill for timing research; "
              "a few requests a minute; honours 429 and Retry-After)")
TS14 = re.compile(r"^\d{14}$")


class ArchiveRefused(Unavailable):
    """Rate-limited past what is polite: stop now, resume later."""


class BlockedURL(UserError):
    """The archive will not show this URL (excluded by the site owner or the archive)."""


@dataclass(frozen=True)
class Capture:
    timestamp: str  # 14 digits, UTC (WARC-Date)
    original: str
    mimetype: str
    status: str  # '-' for a revisit record
    digest: str
    length: str | None = None

    @property
    def utc(self) -> datetime | None:
        """The capture instant; None for the impossible timestamps some CDX rows carry."""
        if not TS14.match(self.timestamp):
            return None
        try:
            return datetime.strptime(self.timestamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            return None

    @property
    def revisit(self) -> bool:
        return self.mimetype == "warc/revisit" or self.status == "-"


def ts14(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%d%H%M%S")


class WaybackClient:
    def __init__(self, cdx_endpoint: str = CDX_ENDPOINT, playback_endpoint: str = PLAYBACK_ENDPOINT, *,
                 per_minute: float = 24.0, max_429: int = 4, backoff_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 timeout_s: float = 60.0):
        self.cdx, self.playback = cdx_endpoint.rstrip("/"), playback_endpoint.rstrip("/")
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.max_429, self.backoff_s, self.timeout_s = max_429, backoff_s, timeout_s
        self.sleep, self.clock = sleep, clock
        self._last_cdx = -1e18
        self.requests = 0
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # Connection errors and 5xx are retried by urllib3 with back-off. 429 is ours alone
        # (urllib3 would otherwise retry it too, sleeping out of our count of refusals).
        retry = Retry(total=3, connect=3, read=2, backoff_factor=2.0, status_forcelist=(500, 502, 504),
                      allowed_methods=("GET",), respect_retry_after_header=False, raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def _get(self, url: str, params: dict | None = None, *, cdx: bool, **kw) -> requests.Response:
        for attempt in range(self.max_429 + 1):
            if cdx:
                wait = self._last_cdx + self.interval - self.clock()
                if wait > 0:
                    self.sleep(wait)
                self._last_cdx = self.clock()
            self.requests += 1
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout_s, **kw)
            except requests.RequestException as exc:
                raise Unavailable(f"cannot reach the archive at {url}: {type(exc).__name__}: {exc}"[:500]) from None
            if resp.status_code != 429:
                return resp
            retry_after = _seconds(resp.headers.get("Retry-After"))
            if attempt == self.max_429:
                break
            self.sleep(max(retry_after or 0.0, self.backoff_s * 2 ** attempt))
        raise ArchiveRefused(f"the archive answered 429 (too many requests) {self.max_429 + 1} times in a "
                             "row; stopped so as not to be blocked. What was done is recorded: run the "
                             "same backfill again later and it resumes")

    def captures(self, url: str, start: str, end: str) -> list[Capture]:
        """Every capture of ``url`` from ``start`` to ``end`` (14-digit UTC, inclusive), all
        statuses and revisits included (no collapse, no filter: they would widen intervals)."""
        params = {"url": url, "from": start, "to": end, "output": "json", "showResumeKey": "true"}
        out: list[Capture] = []
        while True:
            resp = self._get(self.cdx, params, cdx=True)
            if resp.status_code == 403 or "Blocked Site Error" in resp.text[:2000]:
                raise BlockedURL(f"{url}: the archive does not show captures of this URL ({resp.status_code})")
            if resp.status_code != 200:
                raise Unavailable(f"{url}: the CDX server answered {resp.status_code}: {resp.text[:200]}")
            rows = resp.json() if resp.text.strip() else []
            key = None
            if len(rows) >= 2 and rows[-2] == [] and len(rows[-1]) == 1:
                key, rows = rows[-1][0], rows[:-2]
            header, body = (rows[0], rows[1:]) if rows else ([], [])
            for r in body:
                d = dict(zip(header, r))
                out.append(Capture(d.get("timestamp", ""), d.get("original", url), d.get("mimetype", ""),
                                   d.get("statuscode", ""), d.get("digest", ""), d.get("length")))
            if not key:
                return out
            params = {**params, "resumeKey": key}

    def payload(self, cap: Capture) -> tuple[int, bytes, str | None, str]:
        """(HTTP status, body, the capture actually served (its 14-digit timestamp), final URL)
        of ``cap`` in identity mode. A redirect to another capture of the same URL is followed
        (playback serves the nearest one); a redirect elsewhere is returned, not followed."""
        url = f"{self.playback}/{cap.timestamp}id_/{cap.original}"
        for _ in range(5):
            resp = self._get(url, cdx=False, allow_redirects=False)
            if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                nxt = requests.compat.urljoin(url, resp.headers["Location"])
                served = _playback_parts(nxt, self.playback)
                if served is None or _same_target(served[1], cap.original) is False:
                    return resp.status_code, b"", None, nxt
                url = nxt
                continue
            served = _playback_parts(resp.url or url, self.playback)
            return resp.status_code, resp.content, served[0] if served else cap.timestamp, resp.url or url
        return 310, b"", None, url


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _playback_parts(url: str, playback: str) -> tuple[str, str] | None:
    """('20161007203000', original) of a playback URL, None if it is not one."""
    if not url.startswith(playback + "/"):
        return None
    rest = url[len(playback) + 1:]
    m = re.match(r"^(\d{1,14})(?:[a-z]{2}_)?/(.+)$", rest)
    return (m.group(1).ljust(14, "0"), m.group(2)) if m else None


def _same_target(a: str, b: str) -> bool:
    """Do two archived URLs name the same resource (scheme and www. folded, as SURT does)?"""
    def key(u: str) -> tuple[str, str]:
        p = urlsplit(u if "://" in u else "http://" + u)
        host = (p.hostname or "").removeprefix("www.")
        return host, (p.path or "/").rstrip("/") + ("?" + p.query if p.query else "")
    return key(a) == key(b)
