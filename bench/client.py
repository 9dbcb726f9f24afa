"""One-off HTTP calls of the set-up (register, log in, create a product): standard library only."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlencode


def http_call(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    form: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, cookies set, JSON body or None) of one request to 127.0.0.1:`port`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        hdrs = dict(headers or {})
        payload = None
        if form is not None:
            payload = urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            payload = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
        cookies = {}
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                cookies[key] = val
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        return response.status, cookies, data
    finally:
        conn.close()
