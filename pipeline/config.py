"""Settings, read once from the environment; every default is documented here and in the README."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = PROJECT_ROOT / "sql"
CLAIMS_DIR = PROJECT_ROOT / "claims"
CASE_2016_DIR = PROJECT_ROOT / "data" / "case_2016"

# What a source is to the analysis: news outlets, release channels, announcers. Here, not in
# store.py, so the command line can offer them without importing DuckDB and pandas.
ROLES = ("news", "release", "announcement")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "media-timing@localhost"
    timeout_s: float = 30.0
    ssl: bool = False  # TLS from the first byte (port 465), rather than STARTTLS


@dataclass(frozen=True)
class Settings:
    # MEDIA_TIMING_DB: the one DuckDB file.
    db_path: Path
    # MEDIA_TIMING_DATA_DIR: reports, staging files and other generated output.
    data_dir: Path
    # MEDIA_TIMING_LOCK_WAIT_S: how long a connection waits for another process's lock.
    lock_wait_s: float = 60.0
    # MEDIA_TIMING_FETCH_*: politeness and limits for feed polling.
    fetch_connect_timeout_s: float = 5.0
    fetch_read_timeout_s: float = 20.0
    fetch_deadline_s: float = 60.0
    fetch_max_bytes: int = 20 * 1024 * 1024
    fetch_workers: int = 100  # transfers in flight; with libcurl each is a socket, not a thread
    fetch_per_host: int = 2
    # Processes that fetch and parse in parallel (`media-timing ingest feeds`); load_settings
    # defaults it to the number of cores. Airflow's mapped fetch tasks are processes already.
    fetch_processes: int = 1
    poll_minutes: int = 15
    max_failures: int = 10
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    # MEDIA_TIMING_DIGEST_TO: comma-separated recipients of the weekly digest.
    digest_to: tuple[str, ...] = ()
    # MEDIA_TIMING_FETCH_ALLOW_NETWORKS: CIDRs feeds may reach though loopback, private or
    # link-local (refused by default: server-side request forgery). Tests and local feeds need it.
    fetch_allow_networks: str = ""


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("MEDIA_TIMING_DATA_DIR") or PROJECT_ROOT / "data")
    db_path = Path(os.environ.get("MEDIA_TIMING_DB") or data_dir / "media_timing.duckdb")
    port = _int("MEDIA_TIMING_SMTP_PORT", 25)
    smtp = SmtpSettings(
        host=os.environ.get("MEDIA_TIMING_SMTP_HOST", "localhost"),
        port=port,
        ssl=_bool("MEDIA_TIMING_SMTP_SSL", port == 465),
        user=os.environ.get("MEDIA_TIMING_SMTP_USER") or None,
        password=os.environ.get("MEDIA_TIMING_SMTP_PASSWORD") or None,
        starttls=_bool("MEDIA_TIMING_SMTP_STARTTLS", False),
        sender=os.environ.get("MEDIA_TIMING_DIGEST_FROM", "media-timing@localhost"),
        timeout_s=_float("MEDIA_TIMING_SMTP_TIMEOUT_S", 30.0),
    )
    return Settings(
        db_path=db_path,
        data_dir=data_dir,
        lock_wait_s=_float("MEDIA_TIMING_LOCK_WAIT_S", 60.0),
        fetch_connect_timeout_s=_float("MEDIA_TIMING_FETCH_CONNECT_TIMEOUT_S", 5.0),
        fetch_read_timeout_s=_float("MEDIA_TIMING_FETCH_READ_TIMEOUT_S", 20.0),
        fetch_deadline_s=_float("MEDIA_TIMING_FETCH_DEADLINE_S", 60.0),
        fetch_max_bytes=_int("MEDIA_TIMING_FETCH_MAX_BYTES", 20 * 1024 * 1024),
        fetch_workers=_int("MEDIA_TIMING_FETCH_WORKERS", 100),
        fetch_per_host=_int("MEDIA_TIMING_FETCH_PER_HOST", 2),
        fetch_processes=_int("MEDIA_TIMING_FETCH_PROCESSES", os.cpu_count() or 1),
        poll_minutes=_int("MEDIA_TIMING_POLL_MINUTES", 15),
        max_failures=_int("MEDIA_TIMING_MAX_FAILURES", 10),
        smtp=smtp,
        digest_to=tuple(a.strip() for a in os.environ.get("MEDIA_TIMING_DIGEST_TO", "").split(",") if a.strip()),
        fetch_allow_networks=os.environ.get("MEDIA_TIMING_FETCH_ALLOW_NETWORKS", ""),
    )


def smtp_from_connection(*, host: str | None, port: int | None, login: str | None,
                         password: str | None, extra: dict, fallback: SmtpSettings) -> SmtpSettings:
    """SMTP settings from an Airflow SMTP connection's fields, read as the smtp provider reads
    them: TLS on connect unless ``disable_ssl``, else STARTTLS unless ``disable_tls`` (any
    non-empty value counts as set), sender from ``from_email``. Plain values in, so the pipeline
    needs no Airflow to use them."""
    use_ssl = not bool(extra.get("disable_ssl", False))
    return SmtpSettings(
        host=host or fallback.host,
        port=int(port or (465 if use_ssl else 25)),
        user=login or None,
        password=password or None,
        ssl=use_ssl,
        starttls=not use_ssl and not bool(extra.get("disable_tls", False)),
        sender=extra.get("from_email") or fallback.sender,
        timeout_s=float(extra.get("timeout", fallback.timeout_s)),
    )
