"""Sending one mail: to the SMTP server of `SMTP_URL` (STARTTLS when the
server offers it; `smtps://`: TLS from the start), or without one (dev and
test) to the log, as one JSON line."""

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from ..config import Settings

logger = logging.getLogger(__name__)
# Seconds the SMTP server gets for each step.
SMTP_TIMEOUT = 30


@dataclass(frozen=True)
class Mail:
    """A plain-text mail."""

    recipient: str
    subject: str
    body: str


def build_message(settings: Settings, mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    # Sent as written (7bit, or 8bit for non-ASCII text), never quoted-printable:
    # a link longer than a mail line would come out as `token=3D…` split by
    # soft line breaks, which a mail reader decodes but a plain search does not.
    message.set_content(mail.body, cte="7bit" if mail.body.isascii() else "8bit")
    return message


async def send(settings: Settings, mail: Mail) -> None:
    """Hand `mail` to the SMTP server; an error if it did not take it."""
    if settings.smtp_url is None:
        # The only place a mail's link (and its token) is written: dev and test.
        shown = {"to": mail.recipient, "subject": mail.subject, "body": mail.body}
        logger.info("mail", extra={"mail": shown})
        return
    url = urlsplit(settings.smtp_url)
    implicit_tls = url.scheme == "smtps"
    host = url.hostname or "localhost"
    port = url.port or (465 if implicit_tls else 25)
    username = unquote(url.username) if url.username else None
    password = unquote(url.password) if url.password else None
    message = build_message(settings, mail)
    await aiosmtplib.send(
        message,
        hostname=host,
        port=port,
        username=username,
        password=password,
        use_tls=implicit_tls,
        timeout=SMTP_TIMEOUT,
    )
