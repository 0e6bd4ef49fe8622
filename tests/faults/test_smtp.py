"""SMTP servers that misbehave on purpose, on loopback: an outage is recorded and the week is sent
once afterwards; a server that accepts and then breaks the conversation counts as sent; one that
takes the message and never answers is `unknown`, never resent blindly; and no SMTP conversation
holds the database."""

import subprocess
import sys
import textwrap
import threading

import pytest

from pipeline.outputs.mailer import DeliveryUnknown, DigestNotSent
from tests.processes import free_port
from tests.smtp_servers import (
    ScriptedSMTP,
    aiosmtpd_server,
    digest_of,
    ledger,
    send_week,
    smtp_settings,
)


def test_an_smtp_outage_is_recorded_and_the_week_is_sent_once_later(case_runs):
    port = free_port()
    down = smtp_settings(port, timeout_s=2)
    waits = []
    digest = digest_of(case_runs)
    with pytest.raises(DigestNotSent, match="not sent after 3 attempts"):
        send_week(case_runs, digest, down, to=["editor@example.org"], sleep=waits.append)
    (week, status, attempts, error, message_id), = ledger(case_runs)
    assert (status, attempts) == ("failed", 3) and "Connection refused" in error
    assert waits == [2.0, 4.0]  # exponential backoff between attempts

    box, controller = aiosmtpd_server(port)
    try:
        up = send_week(case_runs, digest, down, to=["editor@example.org"])
        again = send_week(case_runs, digest_of(case_runs), down, to=["editor@example.org"])
        assert (up.status, again.status) == ("sent", "already_sent")
        assert len(box.messages) == 1
        assert box.messages[0][1]["Message-ID"] == message_id  # the same message as attempted
        assert ledger(case_runs)[0][1:4] == ("sent", 4, None)
        forced = send_week(case_runs, digest, down, to=["editor@example.org"], force=True)
        assert forced.status == "sent" and len(box.messages) == 2
        assert box.messages[1][1]["Message-ID"] != message_id
    finally:
        controller.stop()


@pytest.mark.parametrize("behaviour", ["quit_421", "drop_after_250"])
def test_a_message_the_server_accepted_is_sent_whatever_happens_after(case_runs, behaviour):
    server = ScriptedSMTP(behaviour)
    try:
        smtp = smtp_settings(server.port)
        first = send_week(case_runs, digest_of(case_runs), smtp)
        second = send_week(case_runs, digest_of(case_runs), smtp)
    finally:
        server.close()
    assert (first.status, first.attempts, second.status) == ("sent", 1, "already_sent")
    assert server.accepted == 1 and server.received == 1  # one copy, over two runs
    assert ledger(case_runs)[0][1] == "sent"


@pytest.mark.parametrize("behaviour", ["silent", "drop_at_data"])
def test_a_message_handed_over_without_an_answer_is_unknown_and_not_resent(case_runs, behaviour):
    server = ScriptedSMTP(behaviour)
    try:
        smtp = smtp_settings(server.port, timeout_s=1)
        with pytest.raises(DeliveryUnknown, match="may have arrived"):
            send_week(case_runs, digest_of(case_runs), smtp)
        with pytest.raises(DeliveryUnknown, match="--force"):
            send_week(case_runs, digest_of(case_runs), smtp)  # a second run does not guess either
        assert server.received == 1
        (_, status, attempts, error, _), = ledger(case_runs)
        assert (status, attempts) == ("unknown", 1) and "no reply" in error
        server.behaviour = "ok"
        forced = send_week(case_runs, digest_of(case_runs), smtp, force=True)
        assert forced.status == "sent" and server.received == 2
    finally:
        server.close()


@pytest.mark.parametrize("behaviour", ["refuse_rcpt", "busy"])
def test_a_refusal_before_the_message_is_a_failure_to_retry(case_runs, behaviour):
    server = ScriptedSMTP(behaviour)
    try:
        with pytest.raises(DigestNotSent):
            send_week(case_runs, digest_of(case_runs), smtp_settings(server.port))
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
            send_week(case_runs, digest_of(case_runs), smtp_settings(server.port, timeout_s=6))
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
