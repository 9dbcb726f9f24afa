"""Accounts by mail, against a real SMTP server (aiosmtpd's, on 127.0.0.1):
verification, password reset, email change, and the outbox that carries
their mails (sent after the commit, never for a failed request, retried,
and sent after a restart)."""

import asyncio
import logging
import re
import socket
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from httpx import AsyncClient, Response

from svc_async_sqlite_session_ex.mail import delivery, sender
from svc_async_sqlite_session_ex.mail.outbox import Outbox

from .conftest import AppFactory, ClientFactory, login, register

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"
NEW_PASSWORD = "battery staple"
TOKEN = re.compile(r"[?&]token=([\w-]+)")


class Mailbox:
    """What the SMTP server received; it refuses the first `refuse` mails (451)."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.refuse = 0
        self.url = ""

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 Try again later"
        content = cast(bytes, envelope.content)
        self.mails.append(message_from_bytes(content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [mail for mail in self.mails if mail["To"] == address]

    async def wait_for(self, address: str, count: int = 1) -> EmailMessage:
        """The latest of the first `count` mails to `address`, once they came."""
        deadline = time.monotonic() + 10
        while len(self.to(address)) < count:
            assert time.monotonic() < deadline, f"no mail {count} to {address}: {self.mails}"
            await asyncio.sleep(0.02)
        return self.to(address)[count - 1]


def body(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return cast(str, part.get_content())


def token_in(mail: EmailMessage) -> str:
    found = TOKEN.search(body(mail))
    assert found is not None, body(mail)
    return found.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    yield box
    controller.stop()


@pytest.fixture
async def app(make_app: AppFactory, mailbox: Mailbox) -> FastAPI:
    return await make_app(smtp_url=mailbox.url)


async def me(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/auth/me")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def log_in(client: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    """A login attempt, whatever its outcome."""
    return await client.post("/auth/login", json={"email": email, "password": password})


async def test_registration_mails_a_link_that_verifies_the_email(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    await register(client, "ada@example.com")
    mail = await mailbox.wait_for("ada@example.com")
    assert mail["From"] == "noreply@localhost"
    assert "http://127.0.0.1:8000/" in body(mail)
    await login(client, "ada@example.com")
    assert (await me(client))["email_verified"] is False
    token = token_in(mail)
    # The link stands as written in the mail's raw text: no quoted-printable
    # `token=3D…` cut by soft line breaks.
    assert f"?token={token}\n".encode() in mail.as_bytes()
    assert (await client.post("/auth/verify", json={"token": token})).status_code == 204
    assert (await me(client))["email_verified"] is True
    # A link works once.
    assert (await client.post("/auth/verify", json={"token": token})).status_code == 400


async def test_an_unknown_token_is_refused(client: AsyncClient) -> None:
    for path, extra in [
        ("/auth/verify", {}),
        ("/auth/password/reset", {"new_password": NEW_PASSWORD}),
        ("/auth/email/confirm", {}),
    ]:
        response = await client.post(path, json={"token": "not-a-token"} | extra)
        assert response.status_code == 400, path
        assert "detail" in response.json()


async def test_a_new_verification_mail_retires_the_first(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    await register(client, "ada@example.com")
    first = token_in(await mailbox.wait_for("ada@example.com"))
    await login(client, "ada@example.com")
    assert (await client.post("/auth/verify/request")).status_code == 202
    second = token_in(await mailbox.wait_for("ada@example.com", 2))
    assert (await client.post("/auth/verify", json={"token": first})).status_code == 400
    assert (await client.post("/auth/verify", json={"token": second})).status_code == 204


async def test_verification_request_needs_a_login(client: AsyncClient) -> None:
    assert (await client.post("/auth/verify/request")).status_code == 401


async def test_required_verification_refuses_unverified_logins(
    make_app: AppFactory, make_client: ClientFactory, mailbox: Mailbox
) -> None:
    client = await make_client(await make_app(smtp_url=mailbox.url, require_verified_email=True))
    await register(client, "ada@example.com")
    refused = await log_in(client, "ada@example.com")
    assert refused.status_code == 403
    assert "verify" in refused.json()["detail"].lower()
    token = token_in(await mailbox.wait_for("ada@example.com"))
    assert (await client.post("/auth/verify", json={"token": token})).status_code == 204
    assert (await log_in(client, "ada@example.com")).status_code == 200


async def test_forgot_answers_alike_and_mails_only_an_account(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    await register(client, "ada@example.com")
    await mailbox.wait_for("ada@example.com")
    unknown = await client.post("/auth/password/forgot", json={"email": "bob@example.com"})
    known = await client.post("/auth/password/forgot", json={"email": "Ada@Example.com"})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    # Sent in the order queued: once Ada's came, Bob's turn is over.
    await mailbox.wait_for("ada@example.com", 2)
    assert mailbox.to("bob@example.com") == []


async def test_password_reset_ends_every_session_and_works_once(
    client: AsyncClient, make_client: ClientFactory, mailbox: Mailbox
) -> None:
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    stranger = await make_client()
    response = await stranger.post("/auth/password/forgot", json={"email": "ada@example.com"})
    assert response.status_code == 202
    token = token_in(await mailbox.wait_for("ada@example.com", 2))
    reset = {"token": token, "new_password": NEW_PASSWORD}
    assert (await stranger.post("/auth/password/reset", json=reset)).status_code == 204
    assert (await client.get("/auth/me")).status_code == 401
    assert (await log_in(stranger, "ada@example.com")).status_code == 401
    assert (await log_in(stranger, "ada@example.com", NEW_PASSWORD)).status_code == 200
    again = {"token": token, "new_password": "a third one, then"}
    assert (await stranger.post("/auth/password/reset", json=again)).status_code == 400


async def test_reset_holds_the_password_rules_and_keeps_the_link(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    await register(client, "ada@example.com")
    await client.post("/auth/password/forgot", json={"email": "ada@example.com"})
    token = token_in(await mailbox.wait_for("ada@example.com", 2))
    short = await client.post("/auth/password/reset", json={"token": token, "new_password": "x"})
    assert short.status_code == 422
    reset = {"token": token, "new_password": NEW_PASSWORD}
    assert (await client.post("/auth/password/reset", json=reset)).status_code == 204


async def test_a_new_reset_request_retires_the_earlier_link(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    await register(client, "ada@example.com")
    for _ in range(2):
        await client.post("/auth/password/forgot", json={"email": "ada@example.com"})
    first = token_in(await mailbox.wait_for("ada@example.com", 2))
    second = token_in(await mailbox.wait_for("ada@example.com", 3))
    reset = {"token": first, "new_password": NEW_PASSWORD}
    assert (await client.post("/auth/password/reset", json=reset)).status_code == 400
    reset["token"] = second
    assert (await client.post("/auth/password/reset", json=reset)).status_code == 204


@pytest.mark.slow
async def test_a_reset_link_expires(
    make_app: AppFactory, make_client: ClientFactory, mailbox: Mailbox
) -> None:
    app = await make_app(smtp_url=mailbox.url, password_reset_token_lifetime=1)
    client = await make_client(app)
    await register(client, "ada@example.com")
    await client.post("/auth/password/forgot", json={"email": "ada@example.com"})
    token = token_in(await mailbox.wait_for("ada@example.com", 2))
    await asyncio.sleep(1.1)
    reset = {"token": token, "new_password": NEW_PASSWORD}
    assert (await client.post("/auth/password/reset", json=reset)).status_code == 400


async def test_forgot_is_limited_per_address_and_per_client(
    make_app: AppFactory, make_client: ClientFactory, mailbox: Mailbox
) -> None:
    app = await make_app(
        smtp_url=mailbox.url, password_resets_per_address=2, password_resets_per_client=4
    )
    client = await make_client(app)
    statuses = [
        (await client.post("/auth/password/forgot", json={"email": email})).status_code
        for email in ["ada@example.com", "ADA@example.com", "ada@example.com"]
    ]
    assert statuses == [202, 202, 429]
    other = await client.post("/auth/password/forgot", json={"email": "b@example.com"})
    assert other.status_code == 202
    limited = await client.post("/auth/password/forgot", json={"email": "c@example.com"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0


async def test_email_change_is_confirmed_from_the_new_address(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    change = {"new_email": "Ada@New.example", "current_password": "wrong password"}
    assert (await client.post("/auth/email", json=change)).status_code == 403
    change["current_password"] = PASSWORD
    assert (await client.post("/auth/email", json=change)).status_code == 202
    notice = await mailbox.wait_for("ada@example.com", 2)
    assert "Ada@new.example" in body(notice)
    assert TOKEN.search(body(notice)) is None
    token = token_in(await mailbox.wait_for("Ada@new.example"))
    assert (await me(client))["email"] == "ada@example.com"
    assert (await client.post("/auth/email/confirm", json={"token": token})).status_code == 204
    changed = await me(client)
    assert (changed["email"], changed["email_verified"]) == ("Ada@new.example", True)
    assert (await client.post("/auth/email/confirm", json={"token": token})).status_code == 400
    assert (await log_in(client, "ada@new.example")).status_code == 200
    assert (await log_in(client, "ada@example.com")).status_code == 401


async def test_a_taken_address_gets_the_same_answer_and_a_mail_saying_so(
    client: AsyncClient, make_client: ClientFactory, mailbox: Mailbox
) -> None:
    await register(await make_client(), "bob@example.com")
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    change = {"new_email": "BOB@example.com", "current_password": PASSWORD}
    response = await client.post("/auth/email", json=change)
    assert response.status_code == 202
    said = await mailbox.wait_for("BOB@example.com")
    assert "already has an" in body(said)
    assert TOKEN.search(body(said)) is None
    assert (await me(client))["email"] == "ada@example.com"


async def test_a_failed_request_sends_nothing(
    client: AsyncClient,
    make_client: ClientFactory,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The email change queues two mails; it fails after the first: neither goes."""
    await register(client, "ada@example.com")
    await mailbox.wait_for("ada@example.com")
    queue = Outbox.queue

    async def queue_then_fail(outbox: Outbox, kind: str, recipient: str, **data: Any) -> None:
        if kind == "email_notice":
            raise RuntimeError("the request fails after its first mail was queued")
        await queue(outbox, kind, recipient, **data)

    monkeypatch.setattr(Outbox, "queue", queue_then_fail)
    failing = await make_client(raise_app_exceptions=False)
    await login(failing, "ada@example.com")
    change = {"new_email": "ada@new.example", "current_password": PASSWORD}
    assert (await failing.post("/auth/email", json=change)).status_code == 500
    monkeypatch.setattr(Outbox, "queue", queue)
    await client.post("/auth/password/forgot", json={"email": "ada@example.com"})
    await mailbox.wait_for("ada@example.com", 2)
    assert len(mailbox.mails) == 2
    assert mailbox.to("ada@new.example") == []


async def test_a_mail_committed_before_a_crash_is_sent_after_the_restart(
    make_app: AppFactory, make_client: ClientFactory, mailbox: Mailbox
) -> None:
    crashed = await make_app(smtp_url=mailbox.url)
    task = crashed.state.mail_sender.task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    client = await make_client(crashed)
    await register(client, "ada@example.com")
    await asyncio.sleep(0.2)
    assert mailbox.mails == []
    await make_app(smtp_url=mailbox.url)
    await mailbox.wait_for("ada@example.com")
    await asyncio.sleep(0.2)
    assert len(mailbox.mails) == 1


async def test_two_senders_send_each_mail_once(
    make_app: AppFactory, make_client: ClientFactory, app: FastAPI, mailbox: Mailbox
) -> None:
    await make_app(smtp_url=mailbox.url)
    client = await make_client(app)
    for number in range(4):
        await register(client, f"user{number}@example.com")
    for number in range(4):
        await mailbox.wait_for(f"user{number}@example.com")
    await asyncio.sleep(0.3)
    assert len(mailbox.mails) == 4


async def test_a_refused_mail_is_retried(
    client: AsyncClient, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "FIRST_BACKOFF", 0.05)
    monkeypatch.setattr(sender, "POLL_INTERVAL", 0.05)
    mailbox.refuse = 2
    await register(client, "ada@example.com")
    mail = await mailbox.wait_for("ada@example.com")
    assert token_in(mail)
    assert mailbox.refuse == 0


async def test_without_smtp_url_mails_go_to_the_log(
    make_app: AppFactory, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client(await make_app())
    await register(client, "ada@example.com")
    deadline = time.monotonic() + 10
    while not (logged := [record for record in caplog.records if hasattr(record, "mail")]):
        assert time.monotonic() < deadline, "no mail in the log"
        await asyncio.sleep(0.02)
    mail = logged[0].mail
    assert mail["to"] == "ada@example.com"
    assert TOKEN.search(mail["body"])
