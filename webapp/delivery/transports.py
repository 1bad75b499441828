"""Where messages go: an SMTP server over one reused connection, or the dev mailbox."""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Protocol

from sqlalchemy import insert

from webapp.clock import utcnow
from webapp.delivery.messages import OutgoingEmail
from webapp.extensions import db
from webapp.models import DevMailboxMessage


class DeliveryError(Exception):
    """A message was not accepted. ``permanent`` errors are never retried.

    ``connection_failed`` means the server could not be reached at all: the rest of the
    batch would fail the same way, so the worker stops the batch and waits.
    """

    def __init__(self, reason: str, *, permanent: bool, connection_failed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason[:500]
        self.permanent = permanent
        self.connection_failed = connection_failed


class Transport(Protocol):
    def send(
        self,
        email: OutgoingEmail,
        *,
        still_wanted: Callable[[], bool] | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> bool:
        """Deliver ``email``; return False (nothing delivered) if ``still_wanted()`` said no.

        ``still_wanted`` is asked once per attempt, before the message content goes out;
        an SMTP transport asks it while the server is busy with the MAIL command.
        ``meanwhile``, if given, may be called once while the server is busy with the
        message (work the caller wants overlapped with that wait); it must not raise.
        """
        ...

    def close(self) -> None: ...


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"


def _classify(code: int, reply: bytes | str) -> DeliveryError:
    # 5xx is final; 4xx and anything odd are worth another try.
    return DeliveryError(_reply_text(code, reply), permanent=500 <= code < 600)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _smtp_payload(raw: bytes) -> bytes:
    """The DATA content: lines starting with a dot doubled, then CRLF "." CRLF."""
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


def _reset(connection: smtplib.SMTP) -> None:
    """RSET: abandon the mail transaction in progress (the connection stays usable)."""
    connection.putcmd("rset")
    connection.getreply()


def _abandon(connection: smtplib.SMTP, code: int) -> None:
    """End the mail transaction as ``sendmail`` does after a refusal: RSET, or close on 421."""
    if code == 421:
        connection.close()
    else:
        with contextlib.suppress(smtplib.SMTPServerDisconnected):
            _reset(connection)


class SmtpTransport:
    """Sends over one SMTP connection, opened on first use and re-opened when dropped."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "none",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self._connection: smtplib.SMTP | None = None
        self.connections_opened = 0

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context() if self.security != "none" else None
        if self.security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        connection.ehlo()
        if self.security == "starttls":
            connection.starttls(context=context)
            connection.ehlo()
        if self.username:
            connection.login(self.username, self.password or "")
        self.connections_opened += 1
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._connection = None

    def send(
        self,
        email: OutgoingEmail,
        *,
        still_wanted: Callable[[], bool] | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> bool:
        """Return True only once the server accepted the message (its 250 after DATA).

        Return False, having sent no content, when ``still_wanted()`` answers no.
        """
        for attempt in (1, 2):
            try:
                if self._connection is None:
                    self._connection = self._connect()
                if email.raw is not None:
                    return self._send_raw(self._connection, email, still_wanted, meanwhile)
                if still_wanted is not None and not still_wanted():
                    return False
                # Non-ASCII addresses: smtplib negotiates SMTPUTF8 itself.
                self._connection.send_message(email.message)
                return True
            except smtplib.SMTPServerDisconnected as exc:
                # A reused connection the server closed while idle: reconnect once.
                self._drop()
                if attempt == 2:
                    raise DeliveryError(
                        f"connection lost: {exc}", permanent=False, connection_failed=True
                    ) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                raise _classify(code, reply) from exc
            except smtplib.SMTPResponseException as exc:
                # Sender refused, data refused, auth failed…: the server said why.
                if exc.smtp_code in (421,):  # the server is closing the connection
                    self._drop()
                raise _classify(exc.smtp_code, exc.smtp_error) from exc
            except smtplib.SMTPNotSupportedError as exc:
                # e.g. an internationalised address and a server without SMTPUTF8.
                raise DeliveryError(
                    f"the mail server cannot take this message: {exc}", permanent=True
                ) from exc
            except (TimeoutError, smtplib.SMTPException, OSError) as exc:
                self._drop()
                raise DeliveryError(
                    f"connection error: {exc}", permanent=False, connection_failed=True
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_raw(
        self,
        connection: smtplib.SMTP,
        email: OutgoingEmail,
        still_wanted: Callable[[], bool] | None,
        meanwhile: Callable[[], None] | None,
    ) -> bool:
        """One mail transaction for pre-serialised ASCII bytes, as ``sendmail`` does it.

        The same commands and checks as ``smtplib.SMTP.sendmail`` (MAIL with SIZE,
        RCPT, DATA, the dot-quoted content), without its per-message address parsing
        and option handling. ``still_wanted()`` runs while the server handles MAIL, and
        ``meanwhile()`` while it takes in the content.
        """
        payload = _smtp_payload(email.raw)
        options = f" SIZE={len(email.raw)}" if connection.has_extn("size") else ""
        connection.putcmd("mail", f"FROM:<{email.sender}>{options}")
        try:
            wanted = still_wanted is None or still_wanted()
        except BaseException:
            # The server's reply to MAIL is still unread: this connection is out of step.
            self._drop()
            raise
        code, reply = connection.getreply()
        if not wanted:
            _abandon(connection, code)
            return False
        if code != 250:
            _abandon(connection, code)
            raise smtplib.SMTPSenderRefused(code, reply, email.sender)
        connection.putcmd("rcpt", f"TO:<{email.recipient}>")
        code, reply = connection.getreply()
        if code not in (250, 251):
            _abandon(connection, code)
            raise smtplib.SMTPRecipientsRefused({email.recipient: (code, reply)})
        connection.putcmd("data")
        code, reply = connection.getreply()
        if code != 354:
            _abandon(connection, code)
            raise smtplib.SMTPDataError(code, reply)
        connection.send(payload)
        if meanwhile is not None:
            meanwhile()
        code, reply = connection.getreply()
        if code != 250:
            _abandon(connection, code)
            raise smtplib.SMTPDataError(code, reply)
        return True

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
        self._connection = None


class DevMailboxTransport:
    """Keeps each message in the database, shown at /dev/mailbox (development only).

    The row joins the worker's current transaction, committed with the "sent" marks.
    """

    def send(
        self,
        email: OutgoingEmail,
        *,
        still_wanted: Callable[[], bool] | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> bool:
        if still_wanted is not None and not still_wanted():
            return False
        raw = email.as_bytes()
        headers = BytesHeaderParser(policy=default).parsebytes(raw)
        db.session.execute(
            insert(DevMailboxMessage),
            [
                {
                    "outbox_id": email.outbox_id,
                    "message_id": email.message_id,
                    "to_email": email.recipient,
                    "subject": str(headers["Subject"]),
                    "raw": raw,
                    "created_at": utcnow(),
                }
            ],
        )
        return True

    def close(self) -> None:
        pass


def transport_from_config(config) -> Transport:
    """The transport ``ORGINVITES_MAIL_BACKEND`` names (``smtp`` unless ``dev``)."""
    if config.get("MAIL_BACKEND") == "dev":
        return DevMailboxTransport()
    return SmtpTransport(
        config["SMTP_HOST"],
        int(config["SMTP_PORT"]),
        security=config["SMTP_SECURITY"],
        username=config.get("SMTP_USERNAME"),
        password=config.get("SMTP_PASSWORD"),
        timeout=float(config.get("SMTP_TIMEOUT_SECONDS") or 30),
    )
