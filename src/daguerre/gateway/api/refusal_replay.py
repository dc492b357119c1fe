"""Refusals answered before FastAPI parses anything, for the two that a flood is made of.

- An account the feature is not rolled out to: the same 403 the full path gives (a
  function of the flag as it is now and the account, read from the cached key grant).
- A key whose rate limit is spent: the 429 the full path gave it (remembered by
  gateway/access/refusals.py), with the same body, Retry-After and x-ratelimit-*
  headers, until the window resets.

Each is counted in the same metrics, and costs a header scan, a few dictionary lookups
and a small JSON parse instead of the whole of FastAPI's routing, dependencies and
validation (bench/refusals.py measures it). A key without a cached grant goes the full
way, which reads it.

Only job-starting JSON requests that the full path would refuse in the same way are
answered here; anything else goes on, its body handed on unread:

- a request with an ``Idempotency-Key`` or an ``id`` (a retry of a job that already
  exists is answered with that job, whatever the limits say);
- a body that is not a JSON object, or whose ``n`` is not a positive number;
- an image window with room for the images asked.

What the full path checks first and this does not: the body's other fields, and (before
the rate limits) the prompt's moderation. A malformed body from a refused key gets the
refusal, and a rate-limited key's blocked prompt the 429 (refused either way; the
moderation log misses it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daguerre.gateway.access import gates
from daguerre.gateway.access.refusals import Refusal
from daguerre.gateway.api.errors import APIError
from daguerre.store.accounts import hash_key
from daguerre.store.apikeys import SCOPE_IMAGES, KeyGrant
from daguerre.store.tables import utcnow

# The routes that start a job from a JSON body; a route stand-in for each, so that the
# request metrics label the answer as they would have (request_metrics.py).
ROUTES = {path: SimpleNamespace(path=path) for path in ("/v1/jobs", "/v1/images/generations")}
# A job request's JSON is a few hundred bytes; a larger body goes the full way.
MAX_BODY = 64 * 1024


class RefusalReplayMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = _services(scope)
        key = _key(scope) if services is not None and services.refusals.enabled else None
        grant = _live_grant(services, key) if key is not None else None
        if key is None or grant is None:
            await self.app(scope, receive, send)
            return
        account = grant.account
        rollout = gates.rollout_refusal(services, account, "generate")
        refusal = None if rollout else _spent(services, grant, key)
        if rollout is None and refusal is None:
            await self.app(scope, receive, send)
            return
        messages, body = await _read(receive)
        receive_again = _replaying(messages, receive)
        images = _images_asked(body)
        error: APIError | None = rollout
        if images is not None and refusal is not None and refusal.refuses(images):
            tier = services.controls.tier(refusal.tier)
            error = gates.RateLimited(refusal.tier, tier, refusal.now(time.monotonic()), images)
        if images is None or error is None:
            await self.app(scope, receive_again, send)
            return
        pool = services.settings.pool_for_product(account.product)
        services.metrics.rejected.labels(account.tier, pool, error.code).inc()
        scope.setdefault("state", {})["tier"] = account.tier  # for the request metrics
        scope["route"] = ROUTES[scope["path"]]
        await error.response()(scope, receive_again, send)


def _services(scope: Scope) -> Any:
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in ROUTES:
        return None
    return getattr(getattr(scope.get("app"), "state", None), "services", None)


def _key(scope: Scope) -> str | None:
    """The bearer key of a request without an Idempotency-Key; None otherwise."""
    key = None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return None
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                key = token.strip()
    return key


def _live_grant(services: Any, key: str) -> KeyGrant | None:
    """The key's cached grant, if it may start jobs now (else the full path reads or
    refuses it: unknown, revoked, expired, or without the images scope)."""
    grant: KeyGrant | None = services.keys.get(key)
    if grant is None or not grant.allows(SCOPE_IMAGES):
        return None
    now = utcnow()
    return None if grant.revoked(now) or grant.expired(now) else grant


def _spent(services: Any, grant: KeyGrant, key: str) -> Refusal | None:
    """The key's remembered refusal, while its tier and the tier's limits are those it
    was refused under."""
    refusal: Refusal | None = services.refusals.get(hash_key(key), time.monotonic())
    if refusal is None or grant.account.tier != refusal.tier:
        return None
    tier = services.controls.tier(refusal.tier)
    return refusal if (tier.requests, tier.images) == refusal.limits else None


async def _read(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages as received, and its body (None past MAX_BODY or when the
    client went away: the full path deals with those)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > MAX_BODY:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replaying(messages: list[Message], receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A receive that hands on the messages already read, then the client's own."""
    pending = list(messages)

    async def receive_again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return receive_again


def _images_asked(body: bytes | None) -> int | None:
    """``n`` of a JSON object without an ``id``; None for anything else."""
    if body is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "id" in data:
        return None
    n = data.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return None
    return n
