"""A real SMTP server for the delivery tests: aiosmtpd on 127.0.0.1 in a thread.

The handler records every message it accepts (envelope and parsed email) and can be
told to answer chosen recipients with a given reply at RCPT or at DATA, a number of
times or always, and to take a while per message.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from functools import cached_property

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port nothing listens on right now (older Controllers refuse port=0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    # Parsed on first use, outside the server's event loop (keeps big runs quick).
    @cached_property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]

    @cached_property
    def message_id(self) -> str:
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(self.raw)
        return str(headers["Message-ID"]).strip()

    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()


@dataclass
class _Rule:
    reply: str
    remaining: int | None  # None: always


class RecordingHandler:
    """Accepts everything except what a rule refuses; records what it accepted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.rules: dict[tuple[str, str], _Rule] = {}
        self.refusals: list[tuple[str, str, str]] = []  # (stage, address, reply)
        self.delay = 0.0
        self._hold: tuple[threading.Event, threading.Event] | None = None
        self.held_rcpts: list[str] = []
        self.drops: dict[str, int] = {}  # address -> connections still to drop at DATA
        self.commands: list[str] = []  # every command verb received, in order

    def refuse(self, address: str, reply: str, *, stage: str = "RCPT", times: int | None = None):
        """Answer ``address`` with ``reply`` at ``stage`` (RCPT or DATA), ``times`` times."""
        assert stage in ("RCPT", "DATA")
        with self.lock:
            self.rules[(stage, address.lower())] = _Rule(reply, times)

    def drop_connection_at_data(self, address: str, times: int = 1) -> None:
        """Close the connection, without a reply, once ``address``'s content has arrived."""
        with self.lock:
            self.drops[address.lower()] = times

    def hold_next_message(self) -> tuple[threading.Event, threading.Event]:
        """Keep the next message at DATA, unanswered, until released: ``(arrived, release)``."""
        arrived, release = threading.Event(), threading.Event()
        with self.lock:
            self._hold = (arrived, release)
        return arrived, release

    def _rule_reply(self, stage: str, address: str) -> str | None:
        with self.lock:
            rule = self.rules.get((stage, address.lower()))
            if rule is None or rule.remaining == 0:
                return None
            if rule.remaining is not None:
                rule.remaining -= 1
            self.refusals.append((stage, address, rule.reply))
            return rule.reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.commands.append("MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        with self.lock:
            self.commands.append("RSET")
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self._rule_reply("RCPT", address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.commands.append("DATA")
            dropped = [a for a in envelope.rcpt_tos if self.drops.get(a.lower(), 0) > 0]
            for address in dropped:
                self.drops[address.lower()] -= 1
        if dropped:
            server.transport.close()  # as a crashing or restarting server would
            return "421 4.3.2 closing"  # never reaches the closed connection
        for address in envelope.rcpt_tos:
            reply = self._rule_reply("DATA", address)
            if reply:
                return reply
        with self.lock:
            hold, self._hold = self._hold, None
        if hold is not None:
            arrived, release = hold
            self.held_rcpts = list(envelope.rcpt_tos)
            arrived.set()
            while not release.is_set():
                await asyncio.sleep(0.005)
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = envelope.original_content or envelope.content
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw))
        return "250 2.0.0 Message accepted for delivery"

    # --- reading what arrived ----------------------------------------------------------

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages() if address.lower() in (r.lower() for r in m.rcpt_tos)]

    def message_id_counts(self) -> Counter[str]:
        return Counter(m.message_id for m in self.messages())

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count >= count:
                return True
            time.sleep(0.01)
        return self.count >= count


class SmtpServer:
    """An aiosmtpd Controller that can be stopped and started again on the same port."""

    def __init__(
        self,
        handler: RecordingHandler | None = None,
        port: int | None = None,
        *,
        smtputf8: bool = False,
    ) -> None:
        self.handler = handler or RecordingHandler()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.smtputf8 = smtputf8
        self._controller: Controller | None = None

    def start(self) -> None:
        # A stopped Controller cannot start again (its loop is closed): make a new one.
        self._controller = Controller(
            self.handler, hostname=self.host, port=self.port, enable_SMTPUTF8=self.smtputf8
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        self.stop()
        self.start()
