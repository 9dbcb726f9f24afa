"""An in-process stand-in for a MongoDB server, for tests without one.

It speaks MongoDB's wire protocol on a loopback port, so the service talks to
it through the real PyMongo driver exactly as it would to `mongod`, and
several processes can share it. The documents live in mongomock. It is a
standalone server: no sessions, so no multi-document transactions.

Written here because no library offers a fake *server*: mongomock replaces
only the synchronous client, and the service uses PyMongo's own client in
both modes. It implements the commands PyMongo sends for the service's
queries (find, insert, update, delete, findAndModify, createIndexes,
listIndexes) and the handshake; any other command answers "no such command".
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import bson
import mongomock
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
MORE_TO_COME = 1 << 1


def _cstring(data: bytes, start: int) -> tuple[str, int]:
    end = data.index(b"\x00", start)
    return data[start:end].decode(), end + 1


def _documents(data: bytes) -> list[Document]:
    return list(bson.decode_all(data))


class FakeMongo:
    """The documents and the commands on them, shared by every connection."""

    def __init__(self) -> None:
        self.client: mongomock.MongoClient[Document] = mongomock.MongoClient()
        # One command at a time: each is atomic, as on a server.
        self.lock = threading.Lock()
        self.commands: dict[str, Callable[[mongomock.Database[Document], Document], Document]] = {
            "hello": self._hello,
            "ismaster": self._hello,
            "ping": self._ok,
            "endsessions": self._ok,
            "buildinfo": self._build_info,
            "insert": self._insert,
            "update": self._update,
            "delete": self._delete,
            "find": self._find,
            "findandmodify": self._find_and_modify,
            "createindexes": self._create_indexes,
            "listindexes": self._list_indexes,
            "dropindexes": self._drop_indexes,
            "dropdatabase": self._drop_database,
        }

    def run(self, command: Document) -> Document:
        name = next(iter(command))
        handler = self.commands.get(name.lower())
        if handler is None:
            return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59}
        with self.lock:
            try:
                return handler(self.client[command.get("$db", "admin")], command)
            except mongomock.OperationFailure as exc:
                return {"ok": 0.0, "errmsg": str(exc), "code": exc.code or 2}

    def _ok(self, _db: mongomock.Database[Document], _command: Document) -> Document:
        return {"ok": 1.0}

    def _hello(self, _db: mongomock.Database[Document], _command: Document) -> Document:
        return {
            "helloOk": True,
            "ismaster": True,
            "isWritablePrimary": True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": datetime.now(UTC),
            "minWireVersion": 0,
            "maxWireVersion": 21,
            "readOnly": False,
            "ok": 1.0,
        }

    def _build_info(self, _db: mongomock.Database[Document], _command: Document) -> Document:
        return {"version": "7.0.0", "versionArray": [7, 0, 0, 0], "ok": 1.0}

    def _insert(self, db: mongomock.Database[Document], command: Document) -> Document:
        collection = db[command["insert"]]
        errors = []
        inserted = 0
        for index, document in enumerate(command.get("documents", [])):
            try:
                collection.insert_one(document)
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": 11000, "errmsg": str(exc)})
                if command.get("ordered", True):
                    break
            else:
                inserted += 1
        return {"n": inserted, **({"writeErrors": errors} if errors else {}), "ok": 1.0}

    def _update(self, db: mongomock.Database[Document], command: Document) -> Document:
        collection = db[command["update"]]
        matched = modified = 0
        upserted = []
        errors = []
        for index, spec in enumerate(command.get("updates", [])):
            replace = not any(key.startswith("$") for key in spec["u"])
            try:
                if replace:
                    result = collection.replace_one(
                        spec["q"], spec["u"], upsert=spec.get("upsert", False)
                    )
                elif spec.get("multi"):
                    result = collection.update_many(
                        spec["q"], spec["u"], upsert=spec.get("upsert", False)
                    )
                else:
                    result = collection.update_one(
                        spec["q"], spec["u"], upsert=spec.get("upsert", False)
                    )
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": 11000, "errmsg": str(exc)})
                break
            matched += result.matched_count
            modified += result.modified_count
            if result.upserted_id is not None:
                upserted.append({"index": index, "_id": result.upserted_id})
                matched += 1
        reply: Document = {"n": matched, "nModified": modified, "ok": 1.0}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _delete(self, db: mongomock.Database[Document], command: Document) -> Document:
        collection = db[command["delete"]]
        deleted = 0
        for spec in command.get("deletes", []):
            if spec.get("limit") == 1:
                deleted += collection.delete_one(spec["q"]).deleted_count
            else:
                deleted += collection.delete_many(spec["q"]).deleted_count
        return {"n": deleted, "ok": 1.0}

    def _find(self, db: mongomock.Database[Document], command: Document) -> Document:
        name = command["find"]
        cursor = db[name].find(command.get("filter", {}), command.get("projection"))
        if command.get("sort"):
            cursor = cursor.sort(list(command["sort"].items()))
        if command.get("skip"):
            cursor = cursor.skip(command["skip"])
        if command.get("limit"):
            cursor = cursor.limit(abs(command["limit"]))
        batch = list(cursor)
        return {"cursor": {"id": 0, "ns": f"{db.name}.{name}", "firstBatch": batch}, "ok": 1.0}

    def _find_and_modify(self, db: mongomock.Database[Document], command: Document) -> Document:
        collection = db[command["findAndModify"]]
        query = command.get("query", {})
        sort = list(command["sort"].items()) if command.get("sort") else None
        projection = command.get("fields")
        if command.get("remove"):
            value = collection.find_one_and_delete(query, projection=projection, sort=sort)
        else:
            update = command["update"]
            method = (
                collection.find_one_and_update
                if any(key.startswith("$") for key in update)
                else collection.find_one_and_replace
            )
            try:
                value = method(
                    query,
                    update,
                    projection=projection,
                    sort=sort,
                    upsert=command.get("upsert", False),
                    return_document=bool(command.get("new")),
                )
            except DuplicateKeyError as exc:
                return {"ok": 0.0, "errmsg": str(exc), "code": 11000}
        return {"lastErrorObject": {"n": int(value is not None)}, "value": value, "ok": 1.0}

    def _create_indexes(self, db: mongomock.Database[Document], command: Document) -> Document:
        collection = db[command["createIndexes"]]
        for spec in command["indexes"]:
            options = {key: value for key, value in spec.items() if key not in {"key", "v"}}
            collection.create_index(list(spec["key"].items()), **options)
        return {"ok": 1.0}

    def _list_indexes(self, db: mongomock.Database[Document], command: Document) -> Document:
        name = command["listIndexes"]
        indexes = [
            {"v": 2, "name": index, **info, "key": dict(info["key"])}
            for index, info in db[name].index_information().items()
        ]
        return {"cursor": {"id": 0, "ns": f"{db.name}.{name}", "firstBatch": indexes}, "ok": 1.0}

    def _drop_indexes(self, db: mongomock.Database[Document], command: Document) -> Document:
        db[command["dropIndexes"]].drop_index(command["index"])
        return {"ok": 1.0}

    def _drop_database(self, db: mongomock.Database[Document], _command: Document) -> Document:
        self.client.drop_database(db.name)
        return {"ok": 1.0}


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def _read(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.request.recv(size - len(chunks))
            if not chunk:
                raise ConnectionError
            chunks += chunk
        return bytes(chunks)

    def _send(self, request_id: int, opcode: int, body: bytes) -> None:
        header = struct.pack("<iiii", 16 + len(body), 0, request_id, opcode)
        self.request.sendall(header + body)

    def handle(self) -> None:
        self.server.connections.add(self.request)
        try:
            while True:
                length, request_id, _, opcode = struct.unpack("<iiii", self._read(16))
                body = self._read(length - 16)
                if opcode == OP_QUERY:
                    self._query(request_id, body)
                elif opcode == OP_MSG:
                    self._message(request_id, body)
                else:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self.server.connections.discard(self.request)

    def _query(self, request_id: int, body: bytes) -> None:
        # Legacy OP_QUERY: used by drivers for the first handshake only.
        _, position = _cstring(body, 4)
        command = _documents(body[position + 8 :])[0]
        reply = self.server.mongo.run(command)
        self._send(request_id, OP_REPLY, struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(reply))

    def _message(self, request_id: int, body: bytes) -> None:
        (flags,) = struct.unpack_from("<I", body)
        position = 4
        command: Document = {}
        sequences: dict[str, list[Document]] = {}
        while position < len(body):
            kind = body[position]
            position += 1
            (size,) = struct.unpack_from("<i", body, position)
            if kind == 0:
                command = bson.decode(body[position : position + size])
            else:
                identifier, start = _cstring(body, position + 4)
                sequences[identifier] = _documents(body[start : position + size])
            position += size
        reply = self.server.mongo.run(command | sequences)
        if not flags & MORE_TO_COME:
            self._send(request_id, OP_MSG, struct.pack("<IB", 0, 0) + bson.encode(reply))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Connection)
        self.mongo = FakeMongo()
        self.connections: set[socket.socket] = set()


@contextmanager
def fake_mongo_server(port: int = 0) -> Iterator[str]:
    """Serve a fresh, empty fake on a loopback port (a free one by default);
    yields its `mongodb://` URL. On exit it goes away as a crashed server
    would: the port refuses and open connections are cut."""
    server = _Server(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"mongodb://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        for connection in list(server.connections):
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        thread.join()
