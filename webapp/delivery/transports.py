"""Where messages go: an SMTP server over one reused connection, or the dev mailbox."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
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
    def send(self, email: OutgoingEmail) -> None: ...

    def close(self) -> None: ...


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"


def _classify(code: int, reply: bytes | str) -> DeliveryError:
    # 5xx is final; 4xx and anything odd are worth another try.
    return DeliveryError(_reply_text(code, reply), permanent=500 <= code < 600)


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
        context = ssl.create_default_context()
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

    def send(self, email: OutgoingEmail) -> None:
        """Return only once the server accepted the message (its 250 after DATA)."""
        for attempt in (1, 2):
            try:
                if self._connection is None:
                    self._connection = self._connect()
                if email.raw is not None:
                    self._connection.sendmail(email.sender, [email.recipient], email.raw)
                else:
                    # Non-ASCII addresses: smtplib negotiates SMTPUTF8 itself.
                    self._connection.send_message(email.message)
                return
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

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
        self._connection = None


class DevMailboxTransport:
    """Keeps each message in the database, shown at /dev/mailbox (development only).

    The row joins the worker's current transaction, committed with the "sent" marks.
    """

    def send(self, email: OutgoingEmail) -> None:
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
