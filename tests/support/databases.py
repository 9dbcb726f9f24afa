"""Databases of their own on the local servers, and a probe of a generated app's API."""

from __future__ import annotations

import subprocess
import textwrap

# The app's view, from inside the project's environment: register/log in, add a product.
PROBE = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from {pkg}.main import app

    auth, action = sys.argv[1], json.loads(sys.argv[2])
    out = {{}}
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200, client.get("/health").text
        for email in action.get("register", []):
            r = client.post("/auth/register", json={{"email": email, "password": "pw-" + email}})
            assert r.status_code == 201, r.text
        headers = {{}}
        for email in action.get("login", []):
            if auth == "jwt":
                r = client.post(
                    "/auth/token", data={{"username": email, "password": "pw-" + email}}
                )
                assert r.status_code == 200, (email, r.text)
                headers = {{"Authorization": "Bearer " + r.json()["access_token"]}}
            else:
                r = client.post("/auth/login", json={{"email": email, "password": "pw-" + email}})
                assert r.status_code == 200, (email, r.text)
                headers = {{"X-CSRF-Token": r.json()["csrf_token"]}}
            me = client.get("/auth/me", headers=headers)
            assert me.status_code == 200 and me.json()["email"] == email, me.text
        if "product" in action:
            r = client.post(
                "/products",
                json={{"name": action["product"], "price_cents": 100, "stock": 3}},
                headers=headers,
            )
            assert r.status_code == 201, r.text
            out["product"] = r.json()["id"]
        if "read_product" in action:
            r = client.get(f"/products/{{action['read_product']}}", headers=headers)
            assert r.status_code == 200, r.text
    print(json.dumps(out))
    """
)


def _server_database(database: str, name: str, *, drop: bool = False) -> str:
    """Create (or drop) database *name* on the local server; return its URL."""
    if database == "postgres":
        sql = f'DROP DATABASE IF EXISTS "{name}"' if drop else f'CREATE DATABASE "{name}"'
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", sql],
            check=True,
            capture_output=True,
        )
        return f"postgresql://postgres@127.0.0.1:5432/{name}"
    sql = f"DROP DATABASE IF EXISTS `{name}`" if drop else f"CREATE DATABASE `{name}`"
    subprocess.run(
        ["mariadb", "-h", "127.0.0.1", "-uroot", "-e", sql], check=True, capture_output=True
    )
    return f"mysql://root@127.0.0.1:3306/{name}"
