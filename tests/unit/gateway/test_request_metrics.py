"""Requests counted by route template, method, status and tier, and timed by route and
tier."""

from __future__ import annotations

from tests.unit.gateway.conftest import Gateway


async def test_requests_are_counted_by_route_template_status_and_tier(gateway: Gateway) -> None:
    client = gateway.client
    assert (await client.get("/v1/models", headers=gateway.auth())).status_code == 200
    for job in ("nope-1", "nope-2"):  # two ids, one series: the route's template
        assert (await client.get(f"/v1/jobs/{job}", headers=gateway.auth())).status_code == 404
    assert (await client.get("/v1/models")).status_code == 401  # no key: no tier
    assert (await client.get("/no/such/route", headers=gateway.auth())).status_code == 404
    text = (await client.get("/metrics")).text
    series = [line for line in text.splitlines() if line.startswith("daguerre_http_requests_total")]
    assert (
        'daguerre_http_requests_total{method="GET",route="/v1/models",status="200",tier="pro"} 1.0'
        in series
    )
    assert (
        'daguerre_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404",'
        'tier="pro"} 2.0' in series
    )
    assert (
        'daguerre_http_requests_total{method="GET",route="/v1/models",status="401",tier="none"} 1.0'
        in series
    )
    assert any('route="unmatched",status="404"' in line for line in series)
    assert not any("nope-1" in line or "/no/such" in line for line in series)
    assert 'daguerre_http_request_seconds_count{route="/v1/models",tier="pro"} 1.0' in text
    assert 'daguerre_http_request_seconds_count{route="/v1/models",tier="none"} 1.0' in text
