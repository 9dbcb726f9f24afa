"""The session dependency: loaded when a route asks, saved before the commit."""

import time
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from ..config import Settings, get_settings
from ..db import DbSession, before_commit
from ..security import CONTENT_TOO_LARGE, mark_session_used
from .contract import Store
from .middleware import Change, CookieSession
from .session import Session, SessionState, data_size, hash_token
from .store import request_store


def request_session(request: Request) -> CookieSession:
    """The request's (not yet loaded) session, made by `SessionMiddleware`."""
    session: CookieSession = request.state.session
    return session


async def get_session(
    request: Request,
    db: DbSession,
) -> Session:
    """Load the request's session (one store read); it is saved once the
    route returns, just before `get_db` commits.

    The save is part of the request's unit of work: if the route or the
    commit fails, the session change is undone with the data (how: see the
    store's module).
    If so, the client is sent no new cookie.
    """
    settings = get_settings(request)
    store = request_store(request, db)
    mark_session_used(request)
    session = request_session(request)
    if session.token is not None:
        session.attach(await store.get(hash_token(session.token), time.time()))
        if session.state is None:
            # An unknown or expired session: tell the client to forget it.
            session.change = Change.CLEAR
    if session.state is None:
        # Every client gets an anonymous session, from the first route that uses it.
        session.modified = True
    before_commit(
        db,
        lambda: save_session(session, store, settings, time.time()),
        needed=lambda: save_needed(session, settings, time.time()),
    )
    return session


def save_needed(session: Session, settings: Settings, now: float) -> bool:
    """Has `save_session` anything to write (or to refuse)? Checked without
    I/O, so that a request that changed nothing skips the save altogether."""
    return (
        session.modified
        or session.destroyed
        or session.next_token is not None
        or refresh_due(session.state, settings, now)
    )


def refresh_due(old: SessionState | None, settings: Settings, now: float) -> bool:
    """Is the stored session due a rewrite that extends its idle expiry? At
    most once per tenth of the idle timeout."""
    return old is not None and now - old.last_seen >= settings.session_idle_timeout / 10


async def save_session(
    session: CookieSession,
    store: Store,
    settings: Settings,
    now: float,
) -> None:
    """Write what the request changed, and nothing when nothing changed.

    An unchanged session is rewritten only to extend its idle expiry, and at
    most once per tenth of the idle timeout. Data over `SESSION_MAX_SIZE` is
    refused with 413 before anything is written.
    """
    old = session.state
    if session.changed and data_size(session.data) > settings.session_max_size:
        raise HTTPException(CONTENT_TOO_LARGE, "Session data too large")
    if session.destroyed:
        if old is not None:
            await store.delete(old.id)
        if session.token is not None:
            session.change = Change.CLEAR
    elif session.next_token is not None or (old is None and session.modified):
        if old is not None:
            await store.delete(old.id)
        token, handle = session.pending_id()
        await store.add(
            SessionState(
                id=hash_token(token),
                handle=handle,
                data=session.data,
                created_at=now,
                last_seen=now,
                expires_at=now
                + min(settings.session_idle_timeout, settings.session_absolute_timeout),
            )
        )
        session.token = token
        session.change = Change.SET
    elif old is not None and (session.modified or refresh_due(old, settings, now)):
        fields: dict[str, Any] = {
            "last_seen": now,
            "expires_at": min(
                now + settings.session_idle_timeout,
                old.created_at + settings.session_absolute_timeout,
            ),
        }
        # Only what this request changed: a concurrent request's changes stay.
        await store.update(old.id, fields, session.changes())


CurrentSession = Annotated[Session, Depends(get_session, scope="function")]
