"""Sending a round of news — alerts that started, still hold, or cleared — to a channel.

- webhook: one POST of {"source": "drover", "alerts": [...]} (each: rule, key, state `firing`,
  `repeat` or `resolved`, summary, since), JSON, within the channel's timeout; any 2xx is taken.
- smtp: one mail to every address, its subject the count by state, its body a line per alert;
  over TLS, STARTTLS or neither, with a login if the channel gives one.

Credentials in a channel (a header's value, the SMTP password) are secret references, resolved
as the round is sent (ops/secrets.py). A channel that fails raises ChannelFailed, saying why.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from email.message import EmailMessage

import httpx

from drover.config.schema import ChannelSpec, SmtpChannel, WebhookChannel
from drover.model.secret import SecretRef
from drover.ops.secrets import SecretUnavailable, installed


class ChannelFailed(Exception):
    """The channel did not take the round; the message says why."""


@dataclass(frozen=True)
class News:
    rule: str
    key: str
    state: str  # firing, repeat, resolved
    summary: str
    since: datetime

    def line(self) -> str:
        return (
            f"[{self.state}] {self.rule}: {self.summary} (since {self.since:%Y-%m-%d %H:%M:%S} UTC)"
        )


async def send(name: str, channel: ChannelSpec, news: Sequence[News]) -> None:
    try:
        if channel.webhook is not None:
            await _post(channel.webhook, news)
        elif channel.smtp is not None:
            await asyncio.to_thread(_mail, channel.smtp, await _password(channel.smtp), news)
    except SecretUnavailable as err:
        raise ChannelFailed(f"channel {name}: {err}") from None
    except ChannelFailed as err:
        raise ChannelFailed(f"channel {name}: {err}") from None


async def _post(webhook: WebhookChannel, news: Sequence[News]) -> None:
    headers = {"Content-Type": "application/json"}
    for header, value in webhook.headers.items():
        headers[header] = (
            await installed().resolve(header, value.secret)
            if isinstance(value, SecretRef)
            else value
        )
    body = {
        "source": "drover",
        "alerts": [asdict(item) | {"since": item.since.isoformat()} for item in news],
    }
    try:
        async with httpx.AsyncClient(timeout=webhook.timeout) as http:
            response = await http.post(webhook.url, json=body, headers=headers)
    except httpx.HTTPError as err:
        raise ChannelFailed(f"POST {webhook.url}: {type(err).__name__}: {err}") from None
    if not response.is_success:
        raise ChannelFailed(f"POST {webhook.url}: HTTP {response.status_code}")


async def _password(smtp: SmtpChannel) -> str | None:
    if smtp.password is None:
        return None
    return await installed().resolve("password", smtp.password.secret)


def _mail(smtp: SmtpChannel, password: str | None, news: Sequence[News]) -> None:
    counts: dict[str, int] = {}
    for item in news:
        counts[item.state] = counts.get(item.state, 0) + 1
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.to)
    message["Subject"] = "drover: " + ", ".join(f"{n} {state}" for state, n in counts.items())
    message.set_content("\n".join(item.line() for item in news) + "\n")
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if smtp.username and password is not None:
                client.login(smtp.username, password)
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as err:
        raise ChannelFailed(f"mail through {smtp.host}:{smtp.port}: {err}") from None
