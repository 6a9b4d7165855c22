"""The order's floor, served by gunicorn for bench/order_floor.py: one captured `POST /api/v1/orders` (its statements
with their parameters, its response) replayed per request with fresh ids, and the API's Redis round trips (key stamp,
rate-limit pipeline, drain flag), JSON parsed and written — without Django, DRF or the ORM. Not an order path: it
validates nothing and trusts the captured plan; it measures what the same database work costs from Python at least.

ORDER_FLOOR_CAPTURE names the capture file bench/order_floor.py writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import threading
import uuid
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

with open(os.environ["ORDER_FLOOR_CAPTURE"], "rb") as file:
    CAPTURE = pickle.load(file)  # our own file, written by bench/order_floor.py

UUID_TEXT = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def uuids_in(value: Any, found: set[uuid.UUID]) -> set[uuid.UUID]:
    """Every UUID in a parameter: as a UUID, or as text (dashed or hex) inside strings, lists and JSON."""
    if isinstance(value, uuid.UUID):
        found.add(value)
    elif isinstance(value, str):
        found.update(uuid.UUID(match) for match in UUID_TEXT.findall(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            uuids_in(key, found)
            uuids_in(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            uuids_in(item, found)
    return found


def fresh_ids(statements: list[tuple[str, list[Any]]], idempotency_key: str) -> set[uuid.UUID]:
    """The ids the order drew (its rows, the hold, the event, the Idempotency-Key): in what it wrote, not in what it
    read (the product, the API key are read, and must stay)."""
    read: set[uuid.UUID] = set()
    written: set[uuid.UUID] = set()
    for sql, params in statements:
        uuids_in(params, written if "INSERT" in sql else read)
    return (written - read) | {uuid.UUID(idempotency_key)}


FRESH = fresh_ids(CAPTURE["statements"], CAPTURE["idempotency_key"])


def renew(value: Any, ids: dict[uuid.UUID, uuid.UUID], texts: list[tuple[str, str]]) -> Any:
    if isinstance(value, uuid.UUID):
        return ids.get(value, value)
    if isinstance(value, str):
        if len(value) >= 32:
            for old, new in texts:
                if old in value:
                    value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {renew(key, ids, texts): renew(item, ids, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [renew(item, ids, texts) for item in value]
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == "__jsonb__":
            return Jsonb(renew(value[1], ids, texts))
        return tuple(renew(item, ids, texts) for item in value)
    return value


RESPONSE = json.loads(CAPTURE["response"])
REDIS = redis.Redis.from_url(CAPTURE["redis_url"])
_local = threading.local()


def _connection() -> psycopg.Connection:
    """One connection per thread, in the tenant's schema, preparing what it repeats (as DB_PREPARED_STATEMENTS)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(CAPTURE["database_url"], prepare_threshold=5)
        conn.execute(f'SET search_path = "{CAPTURE["schema"]}", public')
        conn.commit()
        _local.conn = conn
    return conn


def application(environ: dict, start_response: Any) -> list[bytes]:
    if environ["REQUEST_METHOD"] != "POST":  # the readiness check
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]
    json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    secret = environ.get("HTTP_AUTHORIZATION", "")[7:]
    hashlib.sha256(secret.encode()).hexdigest()
    REDIS.get("floor:key-stamp")  # the key cache's stamp
    limit = REDIS.pipeline(transaction=False)  # the rate limit
    limit.incr(f"floor:rate:{secret[:12]}")
    limit.expire(f"floor:rate:{secret[:12]}", 60)
    limit.execute()
    ids = {old: uuid.uuid4() for old in FRESH}
    texts = [pair for old, new in ids.items() for pair in ((str(old), str(new)), (old.hex, new.hex))]
    conn = _connection()
    with conn.cursor() as cursor:
        for sql, params in CAPTURE["statements"]:
            cursor.execute(sql, [renew(param, ids, texts) for param in params])
            if cursor.description:
                cursor.fetchall()
    conn.commit()  # the hold is posted here, as in the order path
    REDIS.set("floor:drain-flag", b"1", nx=True, ex=5)  # the fulfilment drain's flag
    body = json.dumps(renew(RESPONSE, ids, texts)).encode()
    start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
