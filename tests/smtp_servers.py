"""SMTP servers for tests: aiosmtpd for the ordinary path, and a raw-socket server that misbehaves
on purpose at a chosen point of the conversation (the faults real servers and networks commit)."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from pipeline.config import SmtpSettings
from pipeline.outputs.digest import compose
from pipeline.outputs.mailer import send_digest, smtp_deliverer
from pipeline.outputs.week_facts import parse_week
from tests.processes import free_port


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 OK"


def aiosmtpd_server(port: int | None = None) -> tuple[Inbox, Controller]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    return inbox, controller


class ScriptedSMTP:
    """One behaviour for every connection:
    ok              a well-behaved server
    quit_421        accepts the message (250), then answers QUIT with 421 and closes
    drop_after_250  accepts the message, then closes without waiting for QUIT
    silent          takes the message and never answers (the client's timeout fires)
    drop_at_data    closes the connection as the message arrives, before any reply
    refuse_rcpt     answers RCPT with 550
    busy            answers the greeting with 421 (try later)
    """

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = 0  # messages whose end-of-data marker arrived
        self.accepted = 0  # messages answered with 250
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket):
        self.connections += 1
        f = conn.makefile("rb")

        def say(line: str):
            conn.sendall(line.encode() + b"\r\n")
        try:
            if self.behaviour == "busy":
                say("421 too busy, try later")
                return
            say("220 scripted ESMTP")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.strip().upper()
                if cmd.startswith((b"EHLO", b"HELO")):
                    say("250 scripted")
                elif cmd.startswith(b"MAIL"):
                    say("250 OK")
                elif cmd.startswith(b"RCPT"):
                    say("550 no such user" if self.behaviour == "refuse_rcpt" else "250 OK")
                elif cmd == b"DATA":
                    say("354 go ahead")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    self.received += 1
                    if self.behaviour == "drop_at_data":
                        return
                    if self.behaviour == "silent":
                        while not self._stop.is_set() and f.readline():
                            pass
                        return
                    say("250 queued")
                    self.accepted += 1
                    if self.behaviour == "drop_after_250":
                        return
                elif cmd == b"QUIT":
                    say("421 closing, shutting down" if self.behaviour == "quit_421" else "221 bye")
                    return
                elif cmd == b"RSET" or cmd == b"NOOP":
                    say("250 OK")
                else:
                    say("502 not implemented")
        except OSError:
            return
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def close(self):
        self._stop.set()
        self.sock.close()
        self.thread.join(timeout=2)
        time.sleep(0.05)


# --- what the digest-sending tests share ---------------------------------------------------------

W40 = parse_week("2016-W40")
TO = ["editor@example.org", "desk@example.org"]


def digest_of(ws, week=W40):
    with ws.read() as con:
        return compose(con, week)


def smtp_settings(port, timeout_s=5.0):
    return SmtpSettings(host="127.0.0.1", port=port, sender="digest@example.org", timeout_s=timeout_s)


def send_week(ws, digest, smtp, **kw):
    return send_digest(ws, digest, kw.pop("to", TO), sender=smtp.sender, deliver=smtp_deliverer(smtp),
                       sleep=kw.pop("sleep", lambda s: None), **kw)


def ledger(ws):
    with ws.read() as con:
        return con.execute("SELECT week, status, attempts, last_error, message_id FROM digests").fetchall()


@pytest.fixture
def inbox():
    box, controller = aiosmtpd_server()
    yield box, smtp_settings(controller.port)
    controller.stop()
