"""Channel adapters: SMTP e-mail (smtplib), an in-memory/JSONL test sink; others plug in."""

from __future__ import annotations

import json
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol


class ChannelError(Exception):
    """A send failed; the outbox retries later."""


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Message:
    id: str
    recipient: str
    subject: str
    body: str
    attachments: tuple[Attachment, ...] = ()


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None: ...


class SmtpChannel:
    """E-mail through an SMTP server (STARTTLS/SMTPS and login when configured)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = "avisos@localhost",
        *,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        ssl_mode: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.ssl_mode, self.timeout = starttls, ssl_mode, timeout

    def _message(self, m: Message) -> EmailMessage:
        em = EmailMessage()
        em["From"] = self.sender
        em["To"] = m.recipient
        em["Subject"] = m.subject
        em["Message-ID"] = f"<{m.id}@aquacis>"  # stable: a retried send is recognisable as the same
        em.set_content(m.body)
        for a in m.attachments:
            maintype, _, subtype = a.content_type.partition("/")
            em.add_attachment(a.data, maintype=maintype, subtype=subtype or "octet-stream", filename=a.name)
        return em

    def send(self, message: Message) -> None:
        try:
            cls = smtplib.SMTP_SSL if self.ssl_mode else smtplib.SMTP
            with cls(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(self._message(message))
        except (OSError, smtplib.SMTPException) as e:
            raise ChannelError(f"smtp {self.host}:{self.port}: {e}") from e


@dataclass
class TestSink:
    """Keeps what would be sent (and appends it to a JSONL file when given). For demos and tests."""

    __test__ = False
    name: str = "sink"
    path: Path | None = None
    sent: list[Message] = field(default_factory=list)
    fail_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: Message) -> None:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise ChannelError("sink: simulated failure")
            self.sent.append(message)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"id": message.id, "to": message.recipient, "subject": message.subject,
                                        "body": message.body,
                                        "attachments": [a.name for a in message.attachments]},
                                       ensure_ascii=False) + "\n")
