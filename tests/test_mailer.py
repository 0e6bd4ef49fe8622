"""Sending the digest, against real SMTP servers on loopback: the parts arrive, the CLI previews
and sends once, Airflow's SMTP connections are read as the provider reads them. What a misbehaving
server does to a delivery is in tests/faults/test_smtp.py."""

from pipeline.config import SmtpSettings
from tests.smtp_servers import TO, digest_of, ledger, send_week


def test_the_digest_arrives_with_text_html_and_inline_charts(case_runs, inbox):
    box, smtp = inbox
    digest = digest_of(case_runs)
    result = send_week(case_runs, digest, smtp)
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
