"""The feed registry: which feeds to poll, in which role, and how healthy each one is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import duckdb
import yaml

from pipeline.errors import UserError
from pipeline.sources import feed_state
from pipeline.sources.addresses import check_url
from pipeline.store import items as store
from pipeline.store.database import transaction


class RegistryError(UserError):
    pass


@dataclass(frozen=True)
class FeedSpec:
    url: str
    name: str
    role: str = "news"
    tags: tuple[str, ...] = ()


def add_feed(con: duckdb.DuckDBPyConnection, spec: FeedSpec) -> tuple[store.Source, bool]:
    """Register a feed; returns (source, created). Re-adding the same name and URL is a no-op."""
    url = check_url(spec.url)
    existing = store.find_source(con, spec.name)
    if existing and existing.url != url:
        raise RegistryError(f"a source named {spec.name!r} already polls {existing.url}")
    same_url = con.execute("SELECT name FROM sources WHERE url = ? AND kind = 'feed'", [url]).fetchall()
    if same_url and same_url[0][0] != spec.name:
        raise RegistryError(f"{url} is already registered as {same_url[0][0]!r}")
    src = store.ensure_source(con, spec.name, role=spec.role, kind="feed", url=url, tags=spec.tags)
    return src, existing is None


def _opml_specs(path: Path, role: str) -> list[FeedSpec]:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise RegistryError(f"{path}: not valid OPML: {exc}") from None
    specs = []

    def walk(node, tags):
        for outline in node.findall("outline"):
            url = outline.get("xmlUrl")
            label = outline.get("title") or outline.get("text")
            if url:
                specs.append(FeedSpec(url=url, name=label or url, role=role, tags=tuple(tags)))
            else:  # a folder: its name becomes a tag of the feeds inside
                walk(outline, tags + ([label] if label else []))

    body = root.find("body")
    if body is None:
        raise RegistryError(f"{path}: OPML without a <body>")
    walk(body, [])
    return specs


def _yaml_specs(path: Path, role: str) -> list[FeedSpec]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text (byte {exc.start}); a feed list is YAML or OPML") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    entries = doc.get("feeds") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise RegistryError(f"{path}: expected a list of feeds (or a mapping with a 'feeds' list)")
    specs = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "url" not in e:
            raise RegistryError(f"{path}: feed #{i + 1} needs at least a url")
        tags = e.get("tags") or ()
        specs.append(FeedSpec(url=e["url"], name=e.get("name") or e["url"], role=e.get("role", role),
                              tags=tuple([tags] if isinstance(tags, str) else tags)))
    return specs


def read_feed_list(path: Path | str, role: str = "news") -> list[FeedSpec]:
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"{path}: no such file")
    if path.suffix.lower() in (".opml", ".xml"):
        return _opml_specs(path, role)
    return _yaml_specs(path, role)


def import_feeds(con: duckdb.DuckDBPyConnection, path: Path | str, role: str = "news") -> tuple[int, int, list[str]]:
    """(added, already there, problems): one bad entry does not stop the others."""
    added = existing = 0
    problems = []
    for spec in read_feed_list(path, role):
        try:
            with transaction(con):
                _, created = add_feed(con, spec)
            added += created
            existing += not created
        except (RegistryError, ValueError) as exc:
            problems.append(f"{spec.name}: {exc}")
    return added, existing, problems


def enable_feed(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Re-enable a feed; failures before now stop counting against it."""
    src = store.find_source(con, name)
    if src is None or src.kind != "feed":
        raise RegistryError(f"no feed named {name!r}")
    with transaction(con):
        con.execute(
            "UPDATE sources SET enabled = TRUE, disabled_reason = NULL, enabled_since_utc = ? WHERE name = ?",
            [datetime.now(UTC), name],
        )
        feed_state.rederive(con, [src.source_id])  # failures counted since now


def feed_health(con: duckdb.DuckDBPyConnection):
    return con.sql(
        """SELECT name, role, enabled, last_status, last_success_utc, consecutive_failures,
                  fetches, coalesce(disabled_reason, last_error) AS problem, url
           FROM v_feed_health ORDER BY name"""
    )
