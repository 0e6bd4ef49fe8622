"""Sending the weekly digest once: bookkeeping in `digests`, retries with backoff, a stable
Message-ID across attempts.

"Exactly once" over SMTP has one unavoidable window: the server accepts the message and we die
before recording it. The next run then sends again, with the same Message-ID, which mail clients
use to recognise a duplicate. Every other failure is recorded and retried.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid

import duckdb

from .config import SmtpSettings
from .digest import Digest


class DigestNotSent(RuntimeError):
    """Every attempt failed; the failure is recorded and a later run will try again."""


@dataclass
class SendResult:
    status: str  # sent, already_sent
    week: str
    recipients: list[str]
    message_id: str
    attempts: int


def smtp_deliverer(smtp: SmtpSettings) -> Callable[[EmailMessage], None]:
    """Deliver through an SMTP server configured by MEDIA_TIMING_SMTP_* (port 465 means TLS)."""
    def deliver(msg: EmailMessage) -> None:
        if smtp.port == 465:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.user and smtp.password:
                client.login(smtp.user, smtp.password)
            client.send_message(msg)
    return deliver


def _now() -> datetime:
    return datetime.now(UTC)


def send_digest(con: duckdb.DuckDBPyConnection, digest: Digest, recipients: list[str], *,
                sender: str, deliver: Callable[[EmailMessage], None], force: bool = False,
                attempts: int = 3, backoff_s: float = 2.0,
                sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Send the week's digest to ``recipients`` unless it was already sent to them.

    Up to ``attempts`` tries, waiting backoff_s, 2*backoff_s, ... between them. The row in
    `digests` is written before the first try and updated after each outcome, so a crash or an
    SMTP outage is visible and the next run sends it (once). ``force`` sends again anyway, as a
    new message.
    """
    recips = sorted({r.strip() for r in recipients if r.strip()})
    if not recips:
        raise ValueError("no recipients")
    key = ",".join(recips)
    week = digest.week.label
    row = con.execute("SELECT status, message_id, attempts FROM digests WHERE week = ? AND recipients = ?",
                      [week, key]).fetchall()
    if row and row[0][0] == "sent" and not force:
        return SendResult("already_sent", week, recips, row[0][1], row[0][2])
    message_id = row[0][1] if row and row[0][0] != "sent" else make_msgid(idstring=week, domain="media-timing")
    tried = row[0][2] if row else 0
    now = _now()
    if row:
        con.execute("UPDATE digests SET status = 'pending', message_id = ?, subject = ?, run_id = ?, "
                    "updated_utc = ? WHERE week = ? AND recipients = ?",
                    [message_id, digest.subject, digest.run_id, now, week, key])
    else:
        con.execute("INSERT INTO digests (week, recipients, message_id, subject, run_id, status, attempts, "
                    "created_utc, updated_utc) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                    [week, key, message_id, digest.subject, digest.run_id, now, now])
    msg = digest.message(sender=sender, recipients=recips, message_id=message_id)
    error = None
    for attempt in range(attempts):
        tried += 1
        try:
            deliver(msg)
        except (smtplib.SMTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            con.execute("UPDATE digests SET attempts = ?, last_error = ?, updated_utc = ? "
                        "WHERE week = ? AND recipients = ?", [tried, error, _now(), week, key])
            if attempt + 1 < attempts:
                sleep(backoff_s * 2 ** attempt)
            continue
        con.execute("UPDATE digests SET status = 'sent', attempts = ?, last_error = NULL, sent_utc = ?, "
                    "updated_utc = ? WHERE week = ? AND recipients = ?", [tried, _now(), _now(), week, key])
        return SendResult("sent", week, recips, message_id, tried)
    con.execute("UPDATE digests SET status = 'failed', updated_utc = ? WHERE week = ? AND recipients = ?",
                [_now(), week, key])
    raise DigestNotSent(f"digest {week} to {key} not sent after {attempts} attempts: {error}; "
                        "recorded in the digests table, a later run will send it")
