"""API keys through the gateway: the /admin/keys API (list, create, revoke, rotate),
scopes (images for /v1, admin for /admin), expiry, revocation despite the auth cache,
and /metrics behind a key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from daguerre.config import Settings
from daguerre.gateway.api.deps import is_loopback, metrics_key_required
from daguerre.gateway.app import create_app
from daguerre.store import Store, open_store
from daguerre.store.tables import utcnow
from tests.support.engine import FakeEngine

ADMIN = "unit-admin-key"


class Client:
    def __init__(self, http: httpx.AsyncClient, store: Store) -> None:
        self.http, self.store = http, store

    async def call(
        self, method: str, path: str, key: str | None = ADMIN, body: Any = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return await self.http.request(method, path, json=body, headers=headers)

    def account(self, tier: str = "pro") -> str:
        return self.store.accounts.create_account(tier, tier, "api").id


Make = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[Client]:
        settings = Settings(data_dir=tmp_path, admin_key=ADMIN, **values)
        store = open_store(settings)
        app = create_app(settings, workflows=FakeEngine(store, render=False), store=store)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as http,
        ):
            yield Client(http, store)

    return factory


async def test_create_list_revoke_through_the_admin_api(make: Make) -> None:
    async with make() as gw:
        alice = gw.account()
        made = await gw.call(
            "POST", "/admin/keys", body={"account": alice, "label": "ci", "expires_in": "30d"}
        )
        assert made.status_code == 201, made.text
        body = made.json()
        key = body["key"]
        assert (body["label"], body["scopes"], body["status"]) == ("ci", ["images"], "active")
        assert body["expires_at"] - body["created_at"] == 30 * 86400
        assert (await gw.call("GET", "/v1/models", key)).status_code == 200

        listed = (await gw.call("GET", f"/admin/keys?account={alice}")).json()
        assert [k["id"] for k in listed["data"]] == [body["id"]]
        assert key not in str(listed) and "key_hash" not in str(listed)
        assert listed["data"][0]["last_used_at"] is not None

        revoked = await gw.call("POST", f"/admin/keys/{body['id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        # At once, though this gateway checked the key a moment ago (auth cache).
        refused = await gw.call("GET", "/v1/models", key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert (await gw.call("GET", f"/admin/keys?account={alice}")).json()["data"] == []
        everything = await gw.call("GET", f"/admin/keys?account={alice}&include_revoked=true")
        assert [k["status"] for k in everything.json()["data"]] == ["revoked"]


async def test_admin_key_api_refuses_bad_input_with_400s_and_404s(make: Make) -> None:
    async with make() as gw:
        alice = gw.account()
        bad = await gw.call("POST", "/admin/keys", body={"account": alice, "scopes": ["root"]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "scopes"
        assert "unknown scope 'root'" in bad.json()["error"]["message"]
        bad = await gw.call("POST", "/admin/keys", body={"account": alice, "expires_in": "soon"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "expires_in"
        bad = await gw.call("POST", "/admin/keys", body={"account": alice, "label": "a\x00b"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "label"
        missing = await gw.call("POST", "/admin/keys", body={"account": "acct_nobody"})
        assert missing.status_code == 404
        assert (await gw.call("GET", "/admin/keys?account=acct_nobody")).status_code == 404
        assert (await gw.call("POST", "/admin/keys/key_nope/revoke")).status_code == 404
        assert (await gw.call("POST", "/admin/keys/key_nope/rotate")).status_code == 404
        bad = await gw.call("POST", "/admin/keys/key_nope/rotate", body={"grace": "a while"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "grace"
        # Ids that cannot be ours are refused before any lookup (NUL: a PostgreSQL error).
        for path in ("/admin/keys?account=a%00b", "/admin/keys/key%00x/revoke"):
            method = "GET" if "?" in path else "POST"
            assert (await gw.call(method, path)).status_code == 400
        surrogate = b'{"account": "acct_\\ud800"}'  # a lone surrogate, JSON-escaped
        headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
        bad = await gw.http.post("/admin/keys", content=surrogate, headers=headers)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "account"


async def test_rotation_through_the_admin_api(make: Make) -> None:
    async with make() as gw:
        alice = gw.account()
        old = (await gw.call("POST", "/admin/keys", body={"account": alice, "label": "app"})).json()
        rotated = await gw.call("POST", f"/admin/keys/{old['id']}/rotate", body={"grace": "1h"})
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()
        assert new["label"] == "app" and new["id"] != old["id"] and new["key"] != old["key"]
        assert new["previous"]["status"] == "revoking"
        # Both work during the grace period; then only the new one.
        assert (await gw.call("GET", "/v1/models", old["key"])).status_code == 200
        assert (await gw.call("GET", "/v1/models", new["key"])).status_code == 200
        again = await gw.call("POST", f"/admin/keys/{old['id']}/rotate")
        assert again.status_code == 409 and again.json()["error"]["code"] == "key_revoked"
        now = await gw.call("POST", f"/admin/keys/{new['id']}/rotate")
        assert now.json()["previous"]["status"] == "revoked"
        assert (await gw.call("GET", "/v1/models", new["key"])).status_code == 401


async def test_an_expired_key_is_told_it_expired(make: Make) -> None:
    async with make() as gw:
        accounts = gw.store.accounts
        soon = utcnow() + timedelta(seconds=0.3)
        key = accounts.create_api_key(gw.account(), expires_at=soon)
        assert (await gw.call("GET", "/v1/models", key)).status_code == 200  # now cached
        await asyncio.sleep(0.4)
        expired = await gw.call("GET", "/v1/models", key)
        assert expired.status_code == 401
        error = expired.json()["error"]
        assert error["message"].startswith("This API key has expired")
        assert error["code"] == "expired_api_key"


async def test_scopes_decide_who_may_call_what(make: Make) -> None:
    async with make() as gw:
        accounts = gw.store.accounts
        ops = gw.account("admin")
        admin_only = accounts.create_api_key(ops)  # the admin tier's default: admin
        images_of_admin_tier = accounts.create_api_key(ops, scopes=["images"])
        both = accounts.create_api_key(gw.account("pro"), scopes=["images", "admin"])
        user = accounts.create_api_key(gw.account("pro"))

        assert (await gw.call("GET", "/admin/pools", admin_only)).status_code == 200
        assert (await gw.call("GET", "/admin/pools", both)).status_code == 200
        for key in (images_of_admin_tier, user):
            refused = await gw.call("GET", "/admin/pools", key)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "admin_only"

        assert (await gw.call("GET", "/v1/models", both)).status_code == 200
        assert (await gw.call("GET", "/v1/models", images_of_admin_tier)).status_code == 200
        refused = await gw.call("GET", "/v1/models", admin_only)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scope"
        # The configured admin key still works, and is no /v1 key.
        assert (await gw.call("GET", "/admin/keys")).status_code == 200
        assert (await gw.call("GET", "/v1/models")).status_code == 401


async def test_an_admin_scoped_key_can_mint_and_revoke_keys(make: Make) -> None:
    async with make() as gw:
        ops = gw.store.accounts.create_api_key(gw.account("admin"))
        alice = gw.account()
        made = await gw.call("POST", "/admin/keys", ops, body={"account": alice})
        assert made.status_code == 201
        revoked = await gw.call("POST", f"/admin/keys/{made.json()['id']}/revoke", ops)
        assert revoked.status_code == 200


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "gw.example.com"))
    assert not metrics_key_required(Settings(host="127.0.0.1"))
    assert metrics_key_required(Settings(host="0.0.0.0"))
    assert metrics_key_required(Settings(host="127.0.0.1", metrics_auth="on"))
    assert not metrics_key_required(Settings(host="0.0.0.0", metrics_auth="off"))


async def test_metrics_are_open_on_loopback_by_default(make: Make) -> None:
    async with make() as gw:
        assert (await gw.call("GET", "/metrics", key=None)).status_code == 200


async def test_metrics_need_a_bearer_key_off_loopback(make: Make) -> None:
    async with make(host="0.0.0.0", metrics_key="prom-secret") as gw:
        missing = await gw.call("GET", "/metrics", key=None)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "DAGUERRE_METRICS_KEY" in missing.json()["error"]["message"]
        user = gw.store.accounts.create_api_key(gw.account())
        assert (await gw.call("GET", "/metrics", user)).status_code == 403
        assert (await gw.call("GET", "/metrics", "wrong")).status_code == 401
        ops = gw.store.accounts.create_api_key(gw.account("admin"))
        for key in ("prom-secret", ADMIN, ops):
            scraped = await gw.call("GET", "/metrics", key)
            assert scraped.status_code == 200 and "daguerre_queue_depth" in scraped.text
        # The metrics key opens /metrics only.
        assert (await gw.call("GET", "/admin/pools", "prom-secret")).status_code == 401
        assert (await gw.call("GET", "/v1/models", "prom-secret")).status_code == 401


async def test_metrics_auth_on_applies_on_loopback_too(make: Make) -> None:
    async with make(metrics_auth="on") as gw:
        assert (await gw.call("GET", "/metrics", key=None)).status_code == 401
        assert (await gw.call("GET", "/metrics", ADMIN)).status_code == 200
