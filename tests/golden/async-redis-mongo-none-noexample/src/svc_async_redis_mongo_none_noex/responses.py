"""The error responses routes may answer, for the OpenAPI document.

Every error body is `{"detail": ...}`; validation errors (422) are listed by
FastAPI itself.
"""

from typing import Any

from pydantic import BaseModel


class Error(BaseModel):
    detail: str


DESCRIPTIONS = {
    400: "The request body could not be read (not UTF-8)",
    403: "Refused: a cross-site request",
    404: "Not found",
    413: "Request body, or the session data it would store, too large",
    503: "A server the service needs is down: retry later",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a router or route: the given status codes."""
    return {code: {"model": Error, "description": DESCRIPTIONS[code]} for code in codes}
