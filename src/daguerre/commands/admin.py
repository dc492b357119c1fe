"""`daguerre admin ...`: the operator's controls, through a running gateway's /admin API
(so a change reaches every replica within about a second). Needs an admin key:
DAGUERRE_ADMIN_KEY, or one from `daguerre keys create --admin`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Change limits, feature flags, degraded mode and the admission pace live.",
    no_args_is_help=True,
)

Server = Annotated[str, typer.Option(envvar="DAGUERRE_SERVER", help="The gateway's URL.")]
Key = Annotated[str | None, typer.Option(envvar="DAGUERRE_ADMIN_KEY", help="An admin key.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


def _call(method: str, path: str, server: str, key: str | None, body: Any = None) -> None:
    import httpx

    if not key:
        raise typer.BadParameter("set DAGUERRE_ADMIN_KEY or pass --key", param_hint="--key")
    try:
        response = httpx.request(
            method,
            server.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    except httpx.HTTPError as err:
        typer.echo(f"cannot reach {server}: {err}", err=True)
        raise typer.Exit(1) from err
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        typer.echo(f"error {response.status_code}: {message}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(response.json(), indent=2))


@app.command("show")
def show(server: Server = DEFAULT_SERVER, key: Key = None) -> None:
    """The tiers and flags in force, and the live overrides."""
    _call("GET", "/admin/access", server, key)


@app.command("pools")
def pools(server: Server = DEFAULT_SERVER, key: Key = None) -> None:
    """Each pool's backlog, throughput and degraded state."""
    _call("GET", "/admin/pools", server, key)


@app.command("workers")
def workers(server: Server = DEFAULT_SERVER, key: Key = None) -> None:
    """Each pool's live workers, wherever they run: slots, batch budget, measured pace."""
    _call("GET", "/admin/workers", server, key)


@app.command("set-tier")
def set_tier(
    tier: Annotated[str, typer.Argument(help="e.g. free")],
    requests: Annotated[str | None, typer.Option(help='e.g. "10/minute"')] = None,
    images: Annotated[str | None, typer.Option(help='e.g. "20/minute"')] = None,
    wait_budget_s: Annotated[float | None, typer.Option("--wait-budget")] = None,
    over_budget: Annotated[str | None, typer.Option(help="defer or reject")] = None,
    priority: Annotated[int | None, typer.Option(help="Temporal priority key, 1..5")] = None,
    weight: Annotated[float | None, typer.Option(help="fairness weight")] = None,
    admit_past_cap: Annotated[
        bool | None, typer.Option("--admit-past-cap/--no-admit-past-cap")
    ] = None,
    retention_days: Annotated[
        float | None, typer.Option(help="days images are kept after their job ends")
    ] = None,
    server: Server = DEFAULT_SERVER,
    key: Key = None,
) -> None:
    """Change some of a tier's settings, live."""
    changes = {
        "requests": requests,
        "images": images,
        "wait_budget_s": wait_budget_s,
        "over_budget": over_budget,
        "priority": priority,
        "fairness_weight": weight,
        "admit_past_cap": admit_past_cap,
        "retention_days": retention_days,
    }
    body = {k: v for k, v in changes.items() if v is not None}
    if not body:
        raise typer.BadParameter("give at least one setting to change")
    _call("PATCH", f"/admin/tiers/{tier}", server, key, body)


@app.command("reset-tier")
def reset_tier(tier: str, server: Server = DEFAULT_SERVER, key: Key = None) -> None:
    """Drop a tier's live overrides (back to the tiers file)."""
    _call("DELETE", f"/admin/tiers/{tier}", server, key)


@app.command("set-feature")
def set_feature(
    feature: Annotated[str, typer.Argument(help="generate or edit")],
    percent: Annotated[float | None, typer.Option(help="share of accounts, 0..100")] = None,
    tiers: Annotated[str | None, typer.Option(help="comma-separated tiers")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--kill")] = None,
    tier_percent: Annotated[
        str | None,
        typer.Option(help='shares per tier in place of --percent, e.g. "free=10" ("" drops them)'),
    ] = None,
    server: Server = DEFAULT_SERVER,
    key: Key = None,
) -> None:
    """Change a feature flag's rollout, live; --kill switches it off for everyone."""
    body: dict[str, Any] = {}
    if percent is not None:
        body["percent"] = percent
    if tier_percent is not None:
        body["tier_percent"] = _shares(tier_percent)
    if tiers is not None:
        body["tiers"] = [t.strip() for t in tiers.split(",") if t.strip()]
    if enabled is not None:
        body["enabled"] = enabled
    if not body:
        raise typer.BadParameter("give --percent, --tier-percent, --tiers, --enable or --kill")
    _call("PATCH", f"/admin/features/{feature}", server, key, body)


def _shares(text: str) -> dict[str, float]:
    """``free=10,plus=50`` as a mapping (the server checks each share's range)."""
    shares = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        tier, sep, value = item.partition("=")
        try:
            shares[tier.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not tier.strip():
            raise typer.BadParameter(f"{item!r}: write TIER=PERCENT, e.g. free=10")
    return shares


@app.command("reset-feature")
def reset_feature(feature: str, server: Server = DEFAULT_SERVER, key: Key = None) -> None:
    """Drop a flag's live overrides (back to the tiers file)."""
    _call("DELETE", f"/admin/features/{feature}", server, key)


@app.command("degraded")
def degraded(
    pool: Annotated[str, typer.Argument(help="e.g. chat")],
    mode: Annotated[str, typer.Argument(help="on, off or auto")],
    server: Server = DEFAULT_SERVER,
    key: Key = None,
) -> None:
    """Force a pool's degraded mode on or off, or give it back to the backlog (auto)."""
    _call("PUT", f"/admin/pools/{pool}/degraded", server, key, {"mode": mode})


@app.command("pace")
def pace(
    pool: Annotated[str, typer.Argument(help="e.g. chat")],
    value: Annotated[str, typer.Argument(help='times the throughput, 0 (off) or "config"')],
    server: Server = DEFAULT_SERVER,
    key: Key = None,
) -> None:
    """Admit free-like tiers (no admit_past_cap) at most VALUE times the pool's
    throughput, spreading a surge's first burst; "config" goes back to the configured."""
    if value == "config":
        number: float | None = None
    else:
        try:
            number = float(value)
        except ValueError:
            raise typer.BadParameter(
                f'give a number (e.g. 2), 0 or "config", not {value!r}'
            ) from None
    _call("PUT", f"/admin/pools/{pool}/pace", server, key, {"pace": number})
