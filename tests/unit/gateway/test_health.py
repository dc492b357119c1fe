from __future__ import annotations

from tests.unit.gateway.conftest import Gateway


async def test_healthz(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}


async def test_readyz_reports_each_dependency(gateway: Gateway) -> None:
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok", "blobs": "ok"}
    gateway.engine.available = False
    down = await gateway.client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["temporal"] == "unavailable"


async def test_openapi_lists_the_routes(gateway: Gateway) -> None:
    paths = (await gateway.client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/images/generations", "/v1/jobs", "/v1/jobs/{job_id}/events"):
        assert path in paths
