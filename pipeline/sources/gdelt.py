"""Backfill from GDELT 2.0's raw 15-minute files: which articles GDELT saw, batch by batch.

A file labelled L (YYYYMMDDHHMMSS, UTC) holds what GDELT saw in the batch ending at L, so an
article in it was first seen in (L - 15 min, L]: that is its first-seen interval, never a
publication time. The GKG's ``<PAGE_PRECISEPUBTIMESTAMP>`` is the publisher's claim, kept as
the item's ``published_utc`` unless it is later than the batch (then flagged
``after_first_seen`` and not trusted). Mentions carry no title and no claim.

Slot names are derived from the window (the master list is never downloaded); each file is
fetched once, its size checked against Content-Length and, where a manifest (lines of the
master list's form ``<bytes> <md5> <url>``) is given, its size and MD5; it must hold exactly one
entry; it is parsed with an explicit column list, a row with the wrong number of fields
rejected by line, and filtered early (domains, keywords). A missing slot is a recorded gap
(``gdelt_files``, status ``missing``), never zero coverage; a rerun skips the files done.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

from pipeline.errors import UserError
from pipeline.sources.parse_types import RawEntry
from pipeline.sources.sightings import sighted_items, store_sighted
from pipeline.sources.wayback_client import USER_AGENT
from pipeline.store import items as store

BASE_URL = "http://data.gdeltproject.org/gdeltv2"
SLOT = timedelta(minutes=15)
MENTIONS = ["GLOBALEVENTID", "EventTimeDate", "MentionTimeDate", "MentionType", "MentionSourceName",
            "MentionIdentifier", "SentenceID", "Actor1CharOffset", "Actor2CharOffset", "ActionCharOffset",
            "InRawText", "Confidence", "MentionDocLen", "MentionDocTone", "MentionDocTranslationInfo", "Extras"]
GKG = ["GKGRECORDID", "DATE", "SourceCollectionIdentifier", "SourceCommonName", "DocumentIdentifier", "Counts",
       "V2Counts", "Themes", "V2Themes", "Locations", "V2Locations", "Persons", "V2Persons", "Organizations",
       "V2Organizations", "V2Tone", "Dates", "GCAM", "SharingImage", "RelatedImages", "SocialImageEmbeds",
       "SocialVideoEmbeds", "Quotations", "AllNames", "Amounts", "TranslationInfo", "Extras"]
TABLES = {"mentions": ("mentions.CSV.zip", MENTIONS), "gkg": ("gkg.csv.zip", GKG)}
ATTRIBUTION = "The GDELT Project (gdeltproject.org), GDELT 2.0 raw 15-minute files"
_TAG = {name: re.compile(rf"<{name}>(.*?)</{name}>", re.S) for name in ("PAGE_TITLE", "PAGE_PRECISEPUBTIMESTAMP")}

csv.field_size_limit(2**31 - 1)  # GKG fields (GCAM, quotations) exceed Python's 128 KB default


class GdeltError(UserError):
    pass


def slot_labels(start: datetime, end: datetime) -> list[str]:
    """Every 15-minute batch label L whose batch (L - 15 min, L] overlaps [start, end] for more
    than an instant (a whole day is 96 files); for start == end, the batch holding that instant."""
    t = start.astimezone(UTC).replace(second=0, microsecond=0)
    t += timedelta(minutes=(-t.minute) % 15)
    if t < start or (t == start and end > start):
        t += SLOT
    out = []
    while t - SLOT < end or not out:
        out.append(t.strftime("%Y%m%d%H%M%S"))
        t += SLOT
    return out


def read_manifest(text: str) -> dict[str, tuple[int, str]]:
    """{file name: (bytes, md5)} from master-list lines ``<bytes> <md5> <url>``."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            out[parts[2].rsplit("/", 1)[-1]] = (int(parts[0]), parts[1].lower())
    return out


@dataclass
class FileReport:
    label: str
    table: str
    status: str  # ok, missing, failed
    reason: str | None = None
    rows: int = 0
    kept: int = 0
    new: int = 0
    rejected: list[str] = field(default_factory=list)


def _unzip(name: str, body: bytes, expected: tuple[int, str] | None) -> bytes:
    if expected and len(body) != expected[0]:
        raise GdeltError(f"{name}: {len(body)} bytes, the manifest says {expected[0]}")
    if expected and hashlib.md5(body).hexdigest() != expected[1]:
        raise GdeltError(f"{name}: MD5 {hashlib.md5(body).hexdigest()} is not the manifest's {expected[1]}")
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            entries = z.namelist()
            if len(entries) != 1:
                raise GdeltError(f"{name}: the zip holds {len(entries)} entries, not one")
            return z.read(entries[0])
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise GdeltError(f"{name}: not a complete zip ({exc})") from None


def _rows(name: str, data: bytes, columns: list[str], rep: FileReport) -> list[dict]:
    out = []
    text = data.decode("utf-8", errors="replace")
    for line_no, fields in enumerate(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE), 1):
        if not fields:
            continue
        rep.rows += 1
        if len(fields) != len(columns):
            rep.rejected.append(f"{name}:{line_no}: {len(fields)} fields, expected {len(columns)}")
            continue
        out.append(dict(zip(columns, fields)))
    return out


def _keep(row: dict, table: str, domains: tuple[str, ...], keywords: tuple[str, ...]) -> RawEntry | None:
    if table == "mentions":
        if row["MentionType"] != "1":  # 1 = WEB: the identifier is a URL
            return None
        outlet, url, title, claim = row["MentionSourceName"], row["MentionIdentifier"], None, None
    else:
        outlet, url = row["SourceCommonName"], row["DocumentIdentifier"]
        m = _TAG["PAGE_TITLE"].search(row["Extras"])
        title = html.unescape(m.group(1)).strip() if m else None
        m = _TAG["PAGE_PRECISEPUBTIMESTAMP"].search(row["Extras"])
        claim = f"{m.group(1)[:4]}-{m.group(1)[4:6]}-{m.group(1)[6:8]}T{m.group(1)[8:10]}:{m.group(1)[10:12]}:" \
                f"{m.group(1)[12:14]}Z" if m and re.fullmatch(r"\d{14}", m.group(1)) else None
    if domains and not any(outlet == d or outlet.endswith("." + d) for d in domains):
        return None
    hay = f"{url} {title or ''}".lower()
    if keywords and not any(k.lower() in hay for k in keywords):
        return None
    return RawEntry(guid=None, link=url, title=title, author=outlet, published=claim, title_type="text")


def _record(con, source_id: int, rep: FileReport, url: str) -> None:
    con.execute("""INSERT OR REPLACE INTO gdelt_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())""",
                [source_id, rep.label, rep.table, url, rep.status, rep.reason, rep.rows, rep.kept, rep.new,
                 len(rep.rejected), "\n".join(rep.rejected[:50]) or None])


def _fetch(session: requests.Session, url: str, timeout_s: float) -> tuple[int, bytes]:
    try:
        resp = session.get(url, timeout=timeout_s)
    except requests.RequestException as exc:
        return -1, f"{type(exc).__name__}: {exc}".encode()[:300]
    body = resp.content
    declared = resp.headers.get("Content-Length")
    if resp.status_code == 200 and declared and declared.isdigit() and int(declared) != len(body):
        return -2, f"{len(body)} bytes of the {declared} announced".encode()
    return resp.status_code, body


def backfill_gdelt(ws, start: datetime, end: datetime, *, tables: tuple[str, ...] = ("gkg", "mentions"),
                   domains: tuple[str, ...] = (), keywords: tuple[str, ...] = (), source: str = "gdelt",
                   role: str = "news", base_url: str = BASE_URL, manifest: dict | None = None,
                   timeout_s: float = 120.0) -> list[FileReport]:
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise GdeltError(f"no GDELT table {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    labels = slot_labels(start, end)
    if len(labels) > 96 * 31:
        raise GdeltError(f"{len(labels)} slots: backfill at most a month of 15-minute files at a time")
    with ws.write() as con:
        src = store.ensure_source(con, source, role=role, kind="archive", url=base_url, attribution=ATTRIBUTION)
        done = {(lb, t) for lb, t in con.execute(
            "SELECT label, tbl FROM gdelt_files WHERE source_id = ? AND status = 'ok'", [src.source_id]).fetchall()}
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    out = []
    for label in labels:
        for table in sorted(tables, key=lambda t: t != "gkg"):  # GKG first: it has titles and claims
            if (label, table) in done:
                continue
            name = f"{label}.{TABLES[table][0]}"
            url = f"{base_url.rstrip('/')}/{name}"
            rep = FileReport(label, table, "ok")
            status, body = _fetch(session, url, timeout_s)
            entries: list[RawEntry] = []
            if status == 404:
                rep.status, rep.reason = "missing", "no such file (a gap in GDELT's collection)"
            elif status != 200:
                rep.status, rep.reason = "failed", (f"HTTP {status}" if status > 0 else body.decode(errors="replace"))
            else:
                try:
                    rows = _rows(name, _unzip(name, body, (manifest or {}).get(name)), TABLES[table][1], rep)
                    entries = [e for e in (_keep(r, table, domains, keywords) for r in rows) if e is not None]
                except GdeltError as exc:
                    rep.status, rep.reason = "failed", str(exc)
            rep.kept = len(entries)
            with ws.write() as con:
                if entries:
                    hi = datetime.strptime(label, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
                    rep.new = store_sighted(con, sighted_items(
                        entries, [e.link or "" for e in entries], source_id=src.source_id, seen_lo=hi - SLOT,
                        seen_hi=hi, provenance=f"gdelt:{label}.{table}"))
                _record(con, src.source_id, rep, url)
            out.append(rep)
    return out
