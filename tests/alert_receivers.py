"""Where the alert tests' channels send: an HTTP server that keeps what is POSTed to it, and an
SMTP server (aiosmtpd) that keeps the mails; both real servers on loopback ports."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from drover.bus.embedded import free_port


class WebhookReceiver:
    """Keeps each POST's headers and JSON body; answers `status` (200 unless told)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.status = 200
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every body it took, in order."""
        return [alert for _, body in self.received for alert in body["alerts"]]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readline()  # the request line
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if self.status == 200:
                self.received.append((headers, json.loads(body)))
            answer = f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            writer.write(answer.encode())
            await writer.drain()
        finally:
            writer.close()


class MailReceiver:
    """An SMTP server (in a thread of its own, as aiosmtpd runs) that keeps every mail."""

    def __init__(self) -> None:
        self.mails: list[Message] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def bodies(self) -> list[str]:
        return [str(mail.get_payload()) for mail in list(self.mails)]
