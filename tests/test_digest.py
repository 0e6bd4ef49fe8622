"""The weekly digest against a real SMTP server on loopback (aiosmtpd): the parts arrive, untrusted
titles arrive escaped, an outage is recorded and the week is sent exactly once afterwards."""

import email
import email.policy
import socket
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller

from pipeline.config import SmtpSettings
from pipeline.database import open_db
from pipeline.digest import compose, parse_week, previous_week
from pipeline.mailer import DigestNotSent, send_digest, smtp_deliverer

W40 = parse_week("2016-W40")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, SmtpSettings(host="127.0.0.1", port=controller.port, sender="digest@example.org", timeout_s=5)
    controller.stop()


def send(con, digest, settings, **kw):
    return send_digest(con, digest, ["editor@example.org", "desk@example.org"], sender=settings.sender,
                       deliver=smtp_deliverer(settings), sleep=lambda s: None, **kw)


def test_the_digest_arrives_with_text_html_and_inline_charts(case_db, smtp):
    inbox, settings = smtp
    with open_db(case_db) as con:
        digest = compose(con, W40)
        result = send(con, digest, settings)
    assert result.status == "sent" and result.attempts == 1
    (rcpts, msg), = inbox.messages
    assert sorted(rcpts) == ["desk@example.org", "editor@example.org"]
    assert "2016-W40" in msg["Subject"] and "1 release" in msg["Subject"]
    types = [p.get_content_type() for p in msg.walk()]
    assert types[:4] == ["multipart/alternative", "text/plain", "multipart/related", "text/html"]
    assert types.count("image/png") == 2
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Podesta Emails" in part and "-62 min" in part and "-30 min" in part
        assert "shuffle-weekday-hour" in part and "Timing is not intent" in part
    cids = {p["Content-ID"].strip("<>") for p in msg.walk() if p.get_content_type() == "image/png"}
    assert {f"cid:{c}" for c in cids} <= {s for s in html.split('"') if s.startswith("cid:")}
    assert f"run_id = '{digest.run_id}'" in text  # the SQL that reproduces a figure


def test_untrusted_titles_arrive_escaped(case_db, smtp):
    inbox, settings = smtp
    with open_db(case_db) as con:
        con.execute("""INSERT INTO events (event_id, kind, actor, title, ts_utc, earliest_utc, latest_utc,
                       catalog, imported_utc) VALUES ('X1', 'leak_release', '<b>Leaker</b>',
                       '<script>alert(''pwned'')</script> Leak & more', '2016-10-05 12:00:00+00',
                       '2016-10-05 12:00:00+00', '2016-10-05 12:01:00+00', 'test', now())""")
        send(con, compose(con, W40), settings)
    (_, msg), = inbox.messages
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "<b>Leaker" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; Leak &amp; more" in html
    assert "<script>alert('pwned')</script> Leak & more" in msg.get_body(("plain",)).get_content()


def test_an_smtp_outage_is_recorded_and_the_week_is_sent_once_later(case_db):
    port = free_port()
    down = SmtpSettings(host="127.0.0.1", port=port, sender="digest@example.org", timeout_s=2)
    waits = []
    with open_db(case_db) as con:
        digest = compose(con, W40)
        with pytest.raises(DigestNotSent, match="not sent after 3 attempts"):
            send_digest(con, digest, ["editor@example.org"], sender=down.sender, deliver=smtp_deliverer(down),
                        sleep=waits.append)
        status, attempts, error, message_id = con.execute(
            "SELECT status, attempts, last_error, message_id FROM digests").fetchall()[0]
        assert (status, attempts) == ("failed", 3) and "ConnectionRefusedError" in error
        assert waits == [2.0, 4.0]  # exponential backoff between attempts

        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            up = send_digest(con, digest, ["editor@example.org"], sender=down.sender,
                             deliver=smtp_deliverer(down), sleep=lambda s: None)
            again = send_digest(con, compose(con, W40), ["editor@example.org"], sender=down.sender,
                                deliver=smtp_deliverer(down), sleep=lambda s: None)
            assert (up.status, again.status) == ("sent", "already_sent")
            assert len(inbox.messages) == 1
            assert inbox.messages[0][1]["Message-ID"] == message_id  # the same message as attempted
            row = con.execute("SELECT status, attempts, last_error FROM digests").fetchall()[0]
            assert row == ("sent", 4, None)
            forced = send_digest(con, digest, ["editor@example.org"], sender=down.sender,
                                 deliver=smtp_deliverer(down), force=True, sleep=lambda s: None)
            assert forced.status == "sent" and len(inbox.messages) == 2
            assert inbox.messages[1][1]["Message-ID"] != message_id
        finally:
            controller.stop()


def test_a_week_without_releases_says_so_and_still_reports_collection(case_db):
    with open_db(case_db) as con:
        digest = compose(con, parse_week("2016-W37"))
    assert digest.run_id is None and "0 releases" in digest.subject
    assert "No releases were seen this week" in digest.text
    assert "trump_tweets:" in digest.text and "longest stretch without one" in digest.text


@pytest.mark.parametrize("bad", ["2016-40", "2016-W54", "W40", ""])
def test_weeks_are_iso_weeks(bad):
    with pytest.raises(ValueError, match="ISO week|does not exist"):
        parse_week(bad)


def test_the_previous_week_is_the_last_complete_one():
    monday_morning = datetime(2016, 10, 10, 7, 0, tzinfo=UTC)
    assert previous_week(monday_morning).label == "2016-W40"
    assert W40.start == datetime(2016, 10, 3, tzinfo=UTC) and W40.end == datetime(2016, 10, 10, tzinfo=UTC)


def test_the_cli_previews_and_sends(case_db, smtp, tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    inbox, settings = smtp
    monkeypatch.setenv("MEDIA_TIMING_SMTP_HOST", settings.host)
    monkeypatch.setenv("MEDIA_TIMING_SMTP_PORT", str(settings.port))
    monkeypatch.setenv("MEDIA_TIMING_DIGEST_FROM", "digest@example.org")
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(tmp_path / "data"))  # previews without --out
    out = tmp_path / "w40.html"
    assert main(["--db", str(case_db), "digest", "--week", "2016-W40", "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "w40_correlogram.png").exists() and not inbox.messages
    args = ["--db", str(case_db), "digest", "--week", "2016-W40", "--send", "--to", "a@example.org"]
    assert main(args) == 0 and len(inbox.messages) == 1
    assert main(args) == 0 and len(inbox.messages) == 1
    assert "already sent" in capsys.readouterr().out
    # Recipients from the environment, as the DAG's fallback uses them; none at all is refused.
    monkeypatch.setenv("MEDIA_TIMING_DIGEST_TO", "b@example.org, c@example.org")
    assert main(args[:-2]) == 0 and len(inbox.messages) == 2
    assert sorted(inbox.messages[-1][0]) == ["b@example.org", "c@example.org"]
    monkeypatch.delenv("MEDIA_TIMING_DIGEST_TO")
    assert main(args[:-2]) == 2 and len(inbox.messages) == 2
    assert "MEDIA_TIMING_DIGEST_TO" in capsys.readouterr().err
