"""Sending the weekly digest once: a per-channel ledger in `deliveries`, retries with backoff, a
stable Message-ID across attempts, and no database lock held while a mail server is talked to.

SMTP has one window no client can close: the server may accept the message while its reply is
lost. We keep that window as small as SMTP allows, and never guess inside it:
- refused before the message was handed over (connection refused, a 4xx/5xx to MAIL, RCPT or
  DATA): ``failed``, retried with backoff, and later runs send it;
- accepted (250 after the message), whatever happens next (a 421 to QUIT, a dropped
  connection): ``sent``;
- handed over but no reply (a timeout, a dropped connection while waiting for the 250):
  ``unknown``. It may have arrived, so it is not sent again unless asked (``force``).
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from pipeline.config import SmtpSettings
from pipeline.errors import Unavailable, Uncertain
from pipeline.outputs.digest import Digest
from pipeline.store.database import query_one

CHANNEL = "email"


class DigestNotSent(Unavailable):
    """Every attempt was refused; the failure is recorded and a later run will try again."""


class DeliveryUnknown(Uncertain):
    """The server took the message but never answered: it may or may not have been delivered."""


class DeliveryRefused(RuntimeError):
    """The server (or the network) refused before the message was handed over: safe to retry."""


@dataclass
class SendResult:
    status: str  # sent, already_sent
    week: str
    recipients: list[str]
    message_id: str
    attempts: int


def _data(client: smtplib.SMTP, body: bytes) -> None:
    """DATA, with the one ambiguous moment told apart: after the message is sent, a missing
    reply means we do not know whether it was accepted."""
    client.putcmd("data")
    code, reply = client.getreply()
    if code != 354:
        raise DeliveryRefused(f"DATA refused: {code} {reply.decode(errors='replace')}")
    # Lines starting with a dot are doubled, and the message ends with CRLF . CRLF (RFC 5321).
    quoted = re.sub(rb"(?m)^\.", b"..", body)
    client.send(quoted + (b"" if quoted.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    try:
        code, reply = client.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise DeliveryUnknown(f"no reply after the message was sent ({type(exc).__name__}: {exc})") from exc
    if code != 250:
        raise DeliveryRefused(f"message refused: {code} {reply.decode(errors='replace')}")


def smtp_deliverer(smtp: SmtpSettings) -> Callable[[EmailMessage], None]:
    """Deliver through the SMTP server of ``smtp`` (TLS on connect if ``ssl``, STARTTLS if
    ``starttls``). Raises DeliveryRefused or DeliveryUnknown; returns once the server accepted."""
    def deliver(msg: EmailMessage) -> None:
        recipients = [a.strip() for a in msg["To"].split(",")]
        try:
            if smtp.ssl:
                client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s,
                                          context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryRefused(f"{type(exc).__name__}: {exc}") from exc
        try:
            try:
                client.ehlo_or_helo_if_needed()
                if smtp.starttls:
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                if smtp.user and smtp.password:
                    client.login(smtp.user, smtp.password)
                code, reply = client.mail(msg["From"])
                if code != 250:
                    raise DeliveryRefused(f"MAIL FROM refused: {code} {reply.decode(errors='replace')}")
                for r in recipients:
                    code, reply = client.rcpt(r)
                    if code not in (250, 251):
                        raise DeliveryRefused(f"RCPT TO {r} refused: {code} {reply.decode(errors='replace')}")
            except (smtplib.SMTPException, OSError) as exc:
                raise DeliveryRefused(f"{type(exc).__name__}: {exc}") from exc
            try:
                _data(client, msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
            except (smtplib.SMTPServerDisconnected, OSError) as exc:  # before the message was out
                raise DeliveryRefused(f"{type(exc).__name__}: {exc}") from exc
        finally:
            try:
                client.quit()  # accepted is accepted: a 421 or a drop here changes nothing
            except (smtplib.SMTPException, OSError):  # socket timeouts are OSErrors
                client.close()
    return deliver


def _now() -> datetime:
    return datetime.now(UTC)


def _row(con, week: str, key: str):
    return query_one(con, "SELECT status, message_id, attempts, updated_utc FROM deliveries "
                          "WHERE channel = ? AND item = ? AND recipients = ?", [CHANNEL, week, key])


def _update(ws, week: str, key: str, **values) -> None:
    sets = ", ".join(f"{k} = ?" for k in values)
    with ws.write() as con:
        con.execute(f"UPDATE deliveries SET {sets}, updated_utc = ? WHERE channel = ? AND item = ? AND recipients = ?",
                    [*values.values(), _now(), CHANNEL, week, key])


def _claim_row(ws, digest: Digest, key: str, force: bool, stale_after: timedelta) -> tuple[str | None, str, int]:
    """Record the attempt before any SMTP ('sending'); returns (already-done status or None,
    message id, attempts so far)."""
    week = digest.week.label
    with ws.write() as con:
        row = _row(con, week, key)
        if row and not force:
            status, message_id, tried, updated = row
            if status == "sending" and _now() - updated < stale_after:
                raise DigestNotSent(f"digest {week} to {key} is being sent by another process right now")
            if status == "sending":  # an attempt died mid-conversation: it may have arrived
                con.execute("UPDATE deliveries SET status = 'unknown', last_error = ? WHERE channel = ? "
                            "AND item = ? AND recipients = ?", ["an earlier attempt stopped mid-conversation",
                                                                CHANNEL, week, key])
                status = "unknown"
            if status in ("sent", "unknown"):
                return status, message_id, tried
        message_id = row[1] if row and row[0] not in ("sent", "unknown") else make_msgid(idstring=week, domain="media-timing")
        tried = row[2] if row and not force else 0
        now = _now()
        if row:
            con.execute("UPDATE deliveries SET status = 'sending', message_id = ?, subject = ?, run_ids = ?, "
                        "attempts = ?, updated_utc = ? WHERE channel = ? AND item = ? AND recipients = ?",
                        [message_id, digest.subject, digest.run_id, tried, now, CHANNEL, week, key])
        else:
            con.execute("INSERT INTO deliveries (channel, item, recipients, message_id, subject, run_ids, status, "
                        "attempts, created_utc, updated_utc) VALUES (?, ?, ?, ?, ?, ?, 'sending', 0, ?, ?)",
                        [CHANNEL, week, key, message_id, digest.subject, digest.run_id, now, now])
    return None, message_id, tried


def send_digest(ws, digest: Digest, recipients: list[str], *, sender: str,
                deliver: Callable[[EmailMessage], None], force: bool = False, attempts: int = 3,
                backoff_s: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                timeout_s: float = 120.0) -> SendResult:
    """Send the week's digest to ``recipients`` unless it was already sent (or may have been).

    Up to ``attempts`` tries, waiting backoff_s, 2*backoff_s, ... between refused ones. The
    ledger row is written before the first try and after each outcome, each time in its own
    short transaction: no SMTP conversation happens while the database is held. ``force`` sends
    again anyway, as a new message.
    """
    recips = sorted({r.strip() for r in recipients if r.strip()})
    if not recips:
        raise ValueError("no recipients")
    key, week = ",".join(recips), digest.week.label
    done, message_id, tried = _claim_row(ws, digest, key, force, timedelta(seconds=2 * timeout_s))
    if done == "sent":
        return SendResult("already_sent", week, recips, message_id, tried)
    if done == "unknown":
        raise DeliveryUnknown(
            f"digest {week} to {key}: an earlier attempt handed the message over but got no answer, "
            "so it may have arrived; check a recipient's mailbox, then send again with --force")
    msg = digest.message(sender=sender, recipients=recips, message_id=message_id)
    error = None
    for attempt in range(attempts):
        tried += 1
        try:
            deliver(msg)
        except DeliveryUnknown as exc:
            _update(ws, week, key, status="unknown", attempts=tried, last_error=str(exc))
            raise DeliveryUnknown(f"digest {week} to {key}: {exc}; it may have arrived, so it is not "
                                  "sent again: check a mailbox, then use --force to resend") from None
        except (DeliveryRefused, smtplib.SMTPException, OSError) as exc:
            error = str(exc) if isinstance(exc, DeliveryRefused) else f"{type(exc).__name__}: {exc}"
            _update(ws, week, key, attempts=tried, last_error=error)
            if attempt + 1 < attempts:
                sleep(backoff_s * 2 ** attempt)
            continue
        _update(ws, week, key, status="sent", attempts=tried, last_error=None, sent_utc=_now())
        return SendResult("sent", week, recips, message_id, tried)
    _update(ws, week, key, status="failed")
    raise DigestNotSent(f"digest {week} to {key} not sent after {attempts} attempts: {error}; "
                        "recorded in the deliveries table, a later run will send it")
