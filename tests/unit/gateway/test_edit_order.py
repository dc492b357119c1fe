"""POST /v1/images/edits runs its cheap checks first: a request refused by the rate
limit, the rollout or admission never has its uploads decoded or stored, and a request
that fails after its uploads were stored leaves none of them behind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from daguerre.config import Settings
from daguerre.gateway.app import create_app
from daguerre.gateway.services import uploads
from daguerre.store import Store, open_store
from tests.support.engine import FakeEngine
from tests.unit.gateway.test_edits import image_bytes

EDITS = "/v1/images/edits"


def access(requests: str = "100/minute", edit: dict[str, Any] | None = None) -> dict[str, Any]:
    tier = {"priority": 1, "requests": requests, "images": "100/minute"}
    return {
        "tiers": {"pro": tier},
        "features": {"edit": edit or {"tiers": ["pro"], "percent": 100}},
    }


class Edits:
    def __init__(self, http: httpx.AsyncClient, store: Store, engine: FakeEngine, key: str) -> None:
        self.http, self.store, self.engine, self.key = http, store, engine, key

    async def post(self, image: bytes | None = None) -> httpx.Response:
        files = [("image", ("a.png", image if image is not None else image_bytes(), "image/png"))]
        return await self.http.post(
            EDITS,
            files=files,
            data={"prompt": "make it blue", "size": "64x64"},
            headers={"Authorization": f"Bearer {self.key}"},
        )

    def uploads_left(self) -> list[Path]:
        root = Path(self.store.blobs.root) / "uploads"  # type: ignore[attr-defined]
        return sorted(root.iterdir()) if root.exists() else []


Make = Callable[..., AbstractAsyncContextManager[Edits]]


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The uploads the gateway decoded, by field name."""
    calls: list[str] = []
    real = uploads.decode

    def spy(data: bytes, param: str, max_pixels: int) -> uploads.Upload:
        calls.append(param)
        return real(data, param, max_pixels)

    monkeypatch.setattr(uploads, "decode", spy)
    return calls


@pytest.fixture
def make(tmp_path: Path) -> Make:
    @asynccontextmanager
    async def factory(**access_values: Any) -> AsyncIterator[Edits]:
        settings = Settings(data_dir=tmp_path, access=access(**access_values))
        store = open_store(settings)
        key = store.accounts.create_api_key(store.accounts.create_account("a", "pro", "api").id)
        engine = FakeEngine(store)
        app = create_app(settings, workflows=engine, store=store)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as http,
        ):
            yield Edits(http, store, engine, key)

    return factory


async def test_a_rate_limited_edit_decodes_and_stores_nothing(
    make: Make, decoded: list[str]
) -> None:
    async with make(requests="0/minute") as gw:
        response = await gw.post()
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        assert "retry-after" in response.headers
        assert decoded == []
        assert gw.uploads_left() == []
        assert gw.engine.submitted == []


async def test_an_edit_outside_its_rollout_decodes_nothing(make: Make, decoded: list[str]) -> None:
    async with make(edit={"enabled": False}) as gw:
        response = await gw.post()
        assert response.status_code == 403, response.text
        assert decoded == [] and gw.uploads_left() == []


async def test_an_admitted_edit_is_decoded_and_stored(make: Make, decoded: list[str]) -> None:
    async with make() as gw:
        response = await gw.post()
        assert response.status_code == 200, response.text
        assert decoded == ["image"]
        assert len(gw.uploads_left()) == 1  # uploads/<job>/source.png, for the worker


async def test_a_bad_upload_past_admission_leaves_nothing(make: Make, decoded: list[str]) -> None:
    async with make() as gw:
        response = await gw.post(b"\x89PNG\r\n\x1a\nnot really")
        assert response.status_code == 400, response.text
        assert decoded == ["image"] and gw.uploads_left() == []
        assert gw.engine.submitted == []


async def test_an_edit_the_engine_cannot_start_leaves_no_uploads(make: Make) -> None:
    async with make() as gw:
        gw.engine.available = False
        response = await gw.post()
        assert response.status_code == 503, response.text
        assert gw.uploads_left() == []  # stored, then removed with the unrecorded job
