"""Sending the digest exactly once, against real SMTP servers on loopback: the parts arrive; an
outage is recorded and the week is sent once afterwards; a server that accepts and then breaks
the conversation counts as sent; one that takes the message and never answers is `unknown`,
never resent blindly; and no SMTP conversation holds the database."""

import subprocess
import sys
import textwrap
import threading

import pytest

from pipeline.config import SmtpSettings
from pipeline.digest import compose, parse_week
from pipeline.mailer import DeliveryUnknown, DigestNotSent, send_digest, smtp_deliverer
from tests.smtp_servers import ScriptedSMTP, aiosmtpd_server, free_port

W40 = parse_week("2016-W40")
TO = ["editor@example.org", "desk@example.org"]


def digest_of(ws, week=W40):
    with ws.read() as con:
        return compose(con, week)


def settings(port, timeout_s=5.0):
    return SmtpSettings(host="127.0.0.1", port=port, sender="digest@example.org", timeout_s=timeout_s)


def send(ws, digest, smtp, **kw):
    return send_digest(ws, digest, kw.pop("to", TO), sender=smtp.sender, deliver=smtp_deliverer(smtp),
                       sleep=kw.pop("sleep", lambda s: None), **kw)


def ledger(ws):
    with ws.read() as con:
        return con.execute("SELECT week, status, attempts, last_error, message_id FROM digests").fetchall()


@pytest.fixture
def inbox():
    box, controller = aiosmtpd_server()
    yield box, settings(controller.port)
    controller.stop()


def test_the_digest_arrives_with_text_html_and_inline_charts(case_runs, inbox):
    box, smtp = inbox
    digest = digest_of(case_runs)
    result = send(case_runs, digest, smtp)
    assert result.status == "sent" and result.attempts == 1
    (rcpts, msg), = box.messages
    assert sorted(rcpts) == sorted(TO)
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
    for run_id in digest.run_ids:
        assert f"'{run_id}'" in text  # the SQL that reproduces a figure
    assert ledger(case_runs)[0][:3] == ("2016-W40", "sent", 1)


def test_an_smtp_outage_is_recorded_and_the_week_is_sent_once_later(case_runs):
    port = free_port()
    down = settings(port, timeout_s=2)
    waits = []
    digest = digest_of(case_runs)
    with pytest.raises(DigestNotSent, match="not sent after 3 attempts"):
        send(case_runs, digest, down, to=["editor@example.org"], sleep=waits.append)
    (week, status, attempts, error, message_id), = ledger(case_runs)
    assert (status, attempts) == ("failed", 3) and "Connection refused" in error
    assert waits == [2.0, 4.0]  # exponential backoff between attempts

    box, controller = aiosmtpd_server(port)
    try:
        up = send(case_runs, digest, down, to=["editor@example.org"])
        again = send(case_runs, digest_of(case_runs), down, to=["editor@example.org"])
        assert (up.status, again.status) == ("sent", "already_sent")
        assert len(box.messages) == 1
        assert box.messages[0][1]["Message-ID"] == message_id  # the same message as attempted
        assert ledger(case_runs)[0][1:4] == ("sent", 4, None)
        forced = send(case_runs, digest, down, to=["editor@example.org"], force=True)
        assert forced.status == "sent" and len(box.messages) == 2
        assert box.messages[1][1]["Message-ID"] != message_id
    finally:
        controller.stop()


@pytest.mark.parametrize("behaviour", ["quit_421", "drop_after_250"])
def test_a_message_the_server_accepted_is_sent_whatever_happens_after(case_runs, behaviour):
    server = ScriptedSMTP(behaviour)
    try:
        smtp = settings(server.port)
        first = send(case_runs, digest_of(case_runs), smtp)
        second = send(case_runs, digest_of(case_runs), smtp)
    finally:
        server.close()
    assert (first.status, first.attempts, second.status) == ("sent", 1, "already_sent")
    assert server.accepted == 1 and server.received == 1  # one copy, over two runs
    assert ledger(case_runs)[0][1] == "sent"


@pytest.mark.parametrize("behaviour", ["silent", "drop_at_data"])
def test_a_message_handed_over_without_an_answer_is_unknown_and_not_resent(case_runs, behaviour):
    server = ScriptedSMTP(behaviour)
    try:
        smtp = settings(server.port, timeout_s=1)
        with pytest.raises(DeliveryUnknown, match="may have arrived"):
            send(case_runs, digest_of(case_runs), smtp)
        with pytest.raises(DeliveryUnknown, match="--force"):
            send(case_runs, digest_of(case_runs), smtp)  # a second run does not guess either
        assert server.received == 1
        (_, status, attempts, error, _), = ledger(case_runs)
        assert (status, attempts) == ("unknown", 1) and "no reply" in error
        server.behaviour = "ok"
        forced = send(case_runs, digest_of(case_runs), smtp, force=True)
        assert forced.status == "sent" and server.received == 2
    finally:
        server.close()


@pytest.mark.parametrize("behaviour", ["refuse_rcpt", "busy"])
def test_a_refusal_before_the_message_is_a_failure_to_retry(case_runs, behaviour):
    server = ScriptedSMTP(behaviour)
    try:
        with pytest.raises(DigestNotSent):
            send(case_runs, digest_of(case_runs), settings(server.port))
    finally:
        server.close()
    assert server.received == 0
    (_, status, attempts, _, _), = ledger(case_runs)
    assert (status, attempts) == ("failed", 3)


def test_no_smtp_conversation_holds_the_database(case_runs):
    """While the server sits silent after DATA, another process can write to the database."""
    server = ScriptedSMTP("silent")
    outcome = {}

    def sending():
        try:
            send(case_runs, digest_of(case_runs), settings(server.port, timeout_s=6))
        except DeliveryUnknown as exc:
            outcome["unknown"] = str(exc)

    t = threading.Thread(target=sending)
    t.start()
    try:
        for _ in range(100):
            if server.received:
                break
            threading.Event().wait(0.05)
        assert server.received == 1
        writer = textwrap.dedent(f"""
            import duckdb
            con = duckdb.connect({str(case_runs.db_path)!r})
            con.execute("CREATE TABLE IF NOT EXISTS scratch (x INT)")
            con.close()
            print("wrote")
        """)
        out = subprocess.run([sys.executable, "-c", writer], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "wrote", out.stderr
    finally:
        t.join(timeout=30)
        server.close()
    assert "unknown" in outcome


def test_the_cli_previews_and_sends(case_runs, inbox, tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    box, smtp = inbox
    monkeypatch.setenv("MEDIA_TIMING_SMTP_HOST", smtp.host)
    monkeypatch.setenv("MEDIA_TIMING_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("MEDIA_TIMING_DIGEST_FROM", "digest@example.org")
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(tmp_path / "data"))  # previews without --out
    db = str(case_runs.db_path)
    out = tmp_path / "w40.html"
    assert main(["--db", db, "digest", "--week", "2016-W40", "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "w40_correlogram.png").exists() and not box.messages
    args = ["--db", db, "digest", "--week", "2016-W40", "--send", "--to", "a@example.org"]
    assert main(args) == 0 and len(box.messages) == 1
    assert main(args) == 0 and len(box.messages) == 1
    assert "already sent" in capsys.readouterr().out
    # Recipients from the environment, as the DAG's fallback uses them; none at all is refused.
    monkeypatch.setenv("MEDIA_TIMING_DIGEST_TO", "b@example.org, c@example.org")
    assert main(args[:-2]) == 0 and len(box.messages) == 2
    assert sorted(box.messages[-1][0]) == ["b@example.org", "c@example.org"]
    monkeypatch.delenv("MEDIA_TIMING_DIGEST_TO")
    assert main(args[:-2]) == 2 and len(box.messages) == 2
    assert "MEDIA_TIMING_DIGEST_TO" in capsys.readouterr().err


def test_airflow_smtp_connections_are_read_as_the_provider_reads_them():
    from pipeline.config import smtp_from_connection

    base = SmtpSettings()
    plain = smtp_from_connection(host="mx", port=2525, login=None, password=None,
                                 extra={"disable_ssl": True, "disable_tls": True, "from_email": "d@x.org"},
                                 fallback=base)
    assert (plain.host, plain.port, plain.ssl, plain.starttls, plain.sender) == ("mx", 2525, False, False, "d@x.org")
    default = smtp_from_connection(host="mx", port=None, login="u", password="p", extra={}, fallback=base)
    assert (default.ssl, default.starttls, default.port, default.user) == (True, False, 465, "u")
    starttls = smtp_from_connection(host="mx", port=587, login=None, password=None,
                                    extra={"disable_ssl": "true"}, fallback=base)
    assert (starttls.ssl, starttls.starttls) == (False, True)
