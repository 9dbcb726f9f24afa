"""Whom the per-client login limit counts: an IPv4 address, an IPv6 /64."""

import pytest
from httpx import ASGITransport, AsyncClient

from svc_async_mongo_session_ex.auth.limits import client_of

from .conftest import AppFactory
from .test_security import post_attempt


@pytest.mark.parametrize(
    ("address", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("not an address", "not an address"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64(address: str, client: str) -> None:
    assert client_of(address) == client


@pytest.mark.anyio
async def test_addresses_of_one_ipv6_64_share_the_per_client_login_limit(
    make_app: AppFactory,
) -> None:
    app = await make_app(login_attempts_per_client=2)
    statuses = []
    for n, address in enumerate(["2001:db8::1", "2001:db8::2", "2001:db8::ffff:3"]):
        transport = ASGITransport(app, client=(address, 40000))
        async with AsyncClient(transport=transport, base_url="https://testserver") as client:
            response = await post_attempt(client, f"nobody{n}@example.com", "wrong password")
            statuses.append(response.status_code)
    async with AsyncClient(
        transport=ASGITransport(app, client=("2001:db8:0:1::1", 40000)),
        base_url="https://testserver",
    ) as client:
        response = await post_attempt(client, "nobody@example.com", "wrong password")
        statuses.append(response.status_code)
    # The third address of 2001:db8::/64 is refused; the next /64 is another client.
    assert statuses == [401, 401, 429, 401]
