"""The MongoDB session store: its indexes, and its writes undone on rollback."""

import time
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from svc_async_mongo_session_ex.db import UnitOfWork
from svc_async_mongo_session_ex.sessions.session import SessionState, new_token
from svc_async_mongo_session_ex.sessions.store import SessionStore

from .conftest import SessionProbe

pytestmark = pytest.mark.anyio


def make_state(now: float) -> SessionState:
    return SessionState(
        id=new_token(),
        handle=new_token()[:16],
        user_id=None,
        csrf_token=new_token(),
        data={"colour": "blue"},
        created_at=now,
        last_seen=now,
        expires_at=now + 60,
    )


def unit_of_work(app: FastAPI) -> UnitOfWork:
    """A unit of work without a transaction: writes apply at once, with inverses."""
    return UnitOfWork(app.state.mongo.database, None)


async def test_sessions_expire_by_a_ttl_index(app: FastAPI) -> None:
    store = SessionStore(unit_of_work(app))
    state = make_state(time.time())
    await store.add(state)
    indexes = await app.state.mongo.database.sessions.index_information()
    keys = {tuple(info["key"]): info for info in indexes.values()}
    assert keys[(("expires", 1),)]["expireAfterSeconds"] == 0
    assert keys[(("handle", 1),)]["unique"] is True
    document = await app.state.mongo.database.sessions.find_one({"_id": state.id})
    assert document is not None
    expires = document["expires"].replace(tzinfo=UTC)
    assert abs(expires - datetime.fromtimestamp(state.expires_at, UTC)).total_seconds() < 0.01


async def test_an_expired_session_is_not_read(app: FastAPI) -> None:
    store = SessionStore(unit_of_work(app))
    state = make_state(time.time())
    await store.add(state)
    assert await store.get(state.id, state.expires_at - 1) == state
    # Before MongoDB's TTL monitor gets to it, the read already refuses it.
    assert await store.get(state.id, state.expires_at + 1) is None


async def test_rollback_undoes_every_write(app: FastAPI, probe: SessionProbe) -> None:
    now = time.time()
    kept, changed, gone = make_state(now), make_state(now), make_state(now)
    setup = SessionStore(unit_of_work(app))
    for state in (changed, gone):
        await setup.add(state)
    before = sorted(await probe.states(), key=lambda state: state.id)

    db = unit_of_work(app)
    store = SessionStore(db)
    await store.add(kept)
    await store.update(changed.id, {"last_seen": now + 1}, {"colour": "red"})
    await store.delete(gone.id)
    assert len(await probe.states()) == 2
    await db.rollback()

    assert sorted(await probe.states(), key=lambda state: state.id) == before
