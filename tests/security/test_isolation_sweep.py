"""The isolation sweep (issue 14): every route, driven as another account and as nobody,
against account A's ids.

The routes come from the app's own route table (tests/support/routes.py), so a route
added later is swept too. Each path parameter is filled with A's ids of that kind; a
parameter the sweep cannot fill, or a route that is neither behind an owner check nor
listed below as public or caller-scoped, fails the sweep until someone reviews it.

What must hold, per request:
- another account (B) gets 401, 403 or 404 for anything of A's: a 404 like a missing
  id, so B cannot even learn that an id exists;
- no key, or a wrong key, gets 401 or 403 everywhere but the public routes;
- no answer to anyone but A contains A's prompt, title or account id, or an id of A's
  that the request did not itself name; never a 5xx;
- and afterwards A's data is as it was (B's DELETE, PATCH and POST changed nothing).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.support.engine import png_bytes
from tests.support.inprocess import InProcess, build, serve
from tests.support.routes import RouteInfo, http_routes
from tests.support.victim import CLIENT_JOB_ID, SECRET_PROMPT, SECRET_TITLE, Victim, seed

# Account-independent: the same answer for everyone, key or not. Their answers are
# still checked for A's data.
PUBLIC = {
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",  # the chat page
    "/ops",  # the operator page: its figures and changes need the admin key
    "/web/{name}",  # its static files, by name from a fixed list
    "/metrics",  # aggregate counters by tier and pool; may require a key (a setting)
}
# The caller's own collection: B gets a 2xx here about B's own data, never A's.
CALLER_SCOPED = {
    ("POST", "/v1/jobs"),
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/images/edits"),
    ("GET", "/v1/images"),  # the caller's own images (see test_the_image_list_is_the_callers)
    ("GET", "/v1/files"),  # the caller's own files
    ("POST", "/v1/files"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/conversations"),
    ("POST", "/v1/conversations"),
    ("GET", "/v1/models"),
    # The caller's own webhook signing secret (A's is among the secrets checked for).
    ("GET", "/v1/webhooks/secret"),
    ("POST", "/v1/webhooks/secret/rotate"),
}
NOT_YOURS = {401, 403, 404}
NO_KEY = {401, 403}
# Ids that walk out of their folder or table, for every parameter.
TRAVERSALS = [
    "..",
    "%2E%2E",
    "..%2F..%2Fdaguerre.db",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E%2E%5C%2E%2E%5Curl-signing.key",
    "images%2F{job}%2F0.png",
    "{id}%2F..%2F{id}",
    "{id}%00",
    "*",
    "%25",
]
BODY = {"prompt": "probe from B", "title": "renamed by B", "mode": "new", "pace": 1}


def fillers(victim: Victim) -> dict[str, list[str]]:
    """A's values for each path parameter name the app uses. A new name fails the sweep
    (see ``values_for``) until it is added here."""
    return {
        "job_id": victim.job_ids + victim.row_ids,
        "image_id": victim.image_ids,
        "conversation_id": [victim.conversation_id],
        "turn_id": victim.turn_ids,
        "turn": victim.turn_numbers + victim.turn_ids,
        "turn_index": victim.turn_numbers,
        "index": victim.turn_numbers,
        "key_id": victim.key_ids,
        "file_id": victim.file_ids,
        "response_id": victim.response_ids,
        "account_id": [victim.account_id],
        # Not A's, but what the operator's routes take (B is refused them anyway).
        "name": ["pro", "generate", "index.html"],
        "pool": ["api"],
    }


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    cross_account: list[str] = field(default_factory=list)  # A's data reached
    wrong_status: list[str] = field(default_factory=list)  # refused, but not as required
    unreviewed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{self.requests} requests; statuses {dict(sorted(self.statuses.items()))}",
            f"{len(self.server_errors)} 5xx, {len(self.cross_account)} cross-account reads, "
            f"{len(self.wrong_status)} wrong refusals, {len(self.unreviewed)} unreviewed routes",
        ]
        for name in ("server_errors", "cross_account", "wrong_status", "unreviewed"):
            parts += [f"  {name}: {line}" for line in getattr(self, name)[:40]]
        return "\n".join(parts)


def values_for(route: RouteInfo, victim: Victim, tally: Tally) -> list[dict[str, str]]:
    """Every combination of A's values for the route's parameters."""
    table = fillers(victim)
    unknown = [p for p in route.params if p not in table]
    if unknown:
        tally.unreviewed.append(f"{route.path}: no filler for {unknown}")
        return []
    choices = [[quote(v, safe="") for v in table[p]] for p in route.params]
    return [dict(zip(route.params, combo, strict=True)) for combo in itertools.product(*choices)]


def traversal_values(route: RouteInfo, victim: Victim) -> list[dict[str, str]]:
    some_id = quote(victim.image_ids[0], safe="")
    some_job = quote(victim.job_id, safe="")
    values = [t.replace("{id}", some_id).replace("{job}", some_job) for t in TRAVERSALS]
    return [{p: value for p in route.params} for value in values]


def leaked(text: str, victim: Victim, asked: str) -> list[str]:
    """A's secrets, and A's ids the request did not name, found in an answer."""
    found = [s for s in victim.secrets() if s in text]
    found += [i for i in victim.ids() if i not in asked and quote(i, safe="") not in asked]
    return [f for f in found if f and f in text]


def _no_route(response: httpx.Response) -> bool:
    """A 404 because no route matched (a traversal that left its route): nothing there
    to authenticate for."""
    if response.status_code != 404:
        return False
    try:
        return bool(response.json()["error"]["code"] == "unknown_url")
    except (ValueError, KeyError, TypeError):
        return False


class Sweeper:
    def __init__(self, client: httpx.AsyncClient, target: InProcess, victim: Victim) -> None:
        self.client = client
        self.target = target
        self.victim = victim
        self.tally = Tally()
        self.callers = {
            "B": target.bearer(target.key_b),
            "no key": {},
            "bad key": target.bearer("sk-not-a-key-0000000000000000"),
        }

    async def probe(
        self, method: str, route: RouteInfo, path: str, caller: str, malformed: bool
    ) -> None:
        """One request; ``malformed``: the path holds a traversal, not one of A's ids,
        which may also be refused as bad input (400), since it names nothing."""
        tally = self.tally
        bad_input = {400} if malformed else set()
        body = BODY if method in ("POST", "PUT", "PATCH") else None
        response = await self.client.request(method, path, headers=self.callers[caller], json=body)
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        where = f"{caller}: {method} {path} -> {response.status_code}"
        if response.status_code >= 500:
            tally.server_errors.append(f"{where} {response.text[:200]}")
            return
        found = leaked(response.text, self.victim, path)
        if found:
            tally.cross_account.append(f"{where} reveals {found}")
            return
        public = route.path in PUBLIC
        scoped = (method, route.path) in CALLER_SCOPED
        # A traversal the client resolved onto a collection (``/v1/images/files/..`` is
        # sent as ``/v1/images``): there B gets B's own, checked for A's data just above.
        scoped |= malformed and (method, response.request.url.path) in CALLER_SCOPED
        if caller == "B":
            if public or scoped:
                return
            if response.status_code < 300:
                tally.cross_account.append(f"{where}: {response.text[:200]}")
            elif response.status_code not in NOT_YOURS | bad_input:
                tally.wrong_status.append(f"{where}, not 401/403/404: {response.text[:200]}")
        elif (
            not public
            and response.status_code not in NO_KEY | bad_input
            and not _no_route(response)
        ):
            target = tally.cross_account if response.status_code < 300 else tally.wrong_status
            target.append(f"{where}, not 401/403: {response.text[:200]}")

    async def sweep(self) -> None:
        for route in http_routes(self.target.app):
            methods = sorted(route.methods - {"HEAD", "OPTIONS"})
            if not route.params and route.path not in PUBLIC:
                unlisted = [m for m in methods if (m, route.path) not in CALLER_SCOPED]
                if route.path.startswith("/admin"):
                    unlisted = []  # the operator's: refused to B and to nobody alike
                if unlisted:
                    self.tally.unreviewed.append(
                        f"{unlisted} {route.path}: no path parameter, so not A's by id; "
                        "list it in PUBLIC or CALLER_SCOPED"
                    )
            fills = values_for(route, self.victim, self.tally) if route.params else [{}]
            probes = [(values, False) for values in fills]
            if route.params:
                probes += [(values, True) for values in traversal_values(route, self.victim)]
            for (values, malformed), method, caller in itertools.product(
                probes, methods, self.callers
            ):
                await self.probe(method, route, route.fill(values), caller, malformed)


async def check_a_still_intact(client: httpx.AsyncClient, target: InProcess, v: Victim) -> None:
    a = target.bearer(target.key_a)
    job = (await client.get(f"/v1/jobs/{v.job_id}", headers=a)).json()
    assert job["status"] == "succeeded" and job["prompt"] == SECRET_PROMPT, job
    conv = (await client.get(f"/v1/conversations/{v.conversation_id}", headers=a)).json()
    assert conv["title"] == SECRET_TITLE and conv["turn_count"] == len(v.turn_ids), conv
    # Still A's key: no probe revoked or rotated it.
    assert (await client.get("/v1/models", headers=a)).status_code == 200


async def test_every_route_as_another_account_reveals_nothing_of_a(tmp_path: Path) -> None:
    target = build(tmp_path)
    async with serve(target) as client:
        victim = await seed(client, target)
        # The ids are right: A itself reads each of its things.
        a = target.bearer(target.key_a)
        for image_id in victim.image_ids:
            own = await client.get(f"/v1/images/files/{quote(image_id, safe='')}", headers=a)
            assert own.status_code == 200, (image_id, own.text)
        started = time.monotonic()
        sweeper = Sweeper(client, target, victim)
        await sweeper.sweep()
        elapsed = time.monotonic() - started
        await check_a_still_intact(client, target, victim)
    summary = f"sweep in {elapsed:.1f} s: {sweeper.tally.summary()}"
    print(summary)
    tally = sweeper.tally
    assert tally.requests > 100
    assert not (tally.server_errors or tally.cross_account or tally.wrong_status), summary
    assert not tally.unreviewed, summary


async def test_signed_links_open_only_the_image_they_sign(tmp_path: Path) -> None:
    target = build(tmp_path)
    async with serve(target) as client:
        victim = await seed(client, target)
        assert victim.link is not None
        link = victim.link
        other = next(i for i in victim.image_ids if i != link.image_id)
        base = f"/v1/images/files/{link.image_id}"

        ok = await client.get(base, params={"exp": link.exp, "sig": link.sig})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("image/")

        wrong_sig = "0" * len(link.sig)
        refused: dict[str, tuple[str, dict[str, str | int]]] = {
            "a wrong signature": (base, {"exp": link.exp, "sig": wrong_sig}),
            "another image's signature": (
                f"/v1/images/files/{other}",
                {"exp": link.exp, "sig": link.sig},
            ),
            "a moved expiry": (base, {"exp": link.exp + 3600, "sig": link.sig}),
            "an expired link": (base, {"exp": int(time.time()) - 10, "sig": link.sig}),
            "a truncated signature": (base, {"exp": link.exp, "sig": link.sig[:10]}),
            "an empty signature": (base, {"exp": link.exp, "sig": ""}),
        }
        for what, (path, params) in refused.items():
            response = await client.get(path, params=params)
            assert response.status_code in (401, 403), (what, response.status_code, response.text)
            assert response.json()["error"]["code"], what
        # A bad expiry is bad input, not a 500.
        response = await client.get(base, params={"exp": "soon", "sig": link.sig})
        assert 400 <= response.status_code < 500, response.text
        # B's key does not open A's image, with or without a link's signature missing.
        b = target.bearer(target.key_b)
        response = await client.get(base, headers=b)
        assert response.status_code == 404, response.text
        response = await client.get(base, headers=b, params={"exp": link.exp, "sig": wrong_sig})
        assert response.status_code in (403, 404), response.text
        # An id that names a blob path, not an image, is no image.
        for probe in ("..%2Fimages", f"images%2F{quote(victim.job_id)}%2F0.png", "%2E%2E"):
            response = await client.get(f"/v1/images/files/{probe}", headers=b)
            assert response.status_code in (400, 404), (probe, response.text)


async def test_the_image_list_is_the_callers(tmp_path: Path) -> None:
    """GET /v1/images lists every image of A's for A, and none of them for B: not in B's
    list, and not past A's image given as B's cursor (refused like a missing id)."""
    target = build(tmp_path)
    async with serve(target) as client:
        victim = await seed(client, target)
        a, b = target.bearer(target.key_a), target.bearer(target.key_b)
        own = await client.get("/v1/images", params={"limit": 100}, headers=a)
        assert own.status_code == 200, own.text
        assert set(victim.image_ids) <= {item["id"] for item in own.json()["data"]}
        mine = await client.post("/v1/images/generations", json={"prompt": "B's"}, headers=b)
        assert mine.status_code == 200, mine.text
        theirs = await client.get("/v1/images", params={"limit": 100}, headers=b)
        assert theirs.status_code == 200, theirs.text
        assert len(theirs.json()["data"]) == 1
        assert not leaked(theirs.text, victim, ""), theirs.text
        for image_id in victim.image_ids:
            past = await client.get("/v1/images", params={"after": image_id}, headers=b)
            assert past.status_code == 400, past.text
            assert not leaked(past.text.replace(image_id, ""), victim, ""), past.text


async def test_client_job_ids_are_per_account(tmp_path: Path) -> None:
    """B choosing A's client id makes B's own job: no 409 that tells B the id is taken
    (issue 14, finding 11), and A's job is untouched."""
    target = build(tmp_path)
    async with serve(target) as client:
        victim = await seed(client, target)
        b = target.bearer(target.key_b)
        mine = await client.post(
            "/v1/jobs", json={"prompt": "B's own", "id": CLIENT_JOB_ID}, headers=b
        )
        assert mine.status_code == 202, mine.text
        assert mine.json()["prompt"] == "B's own"
        assert SECRET_PROMPT not in mine.text
        a = target.bearer(target.key_a)
        theirs = (await client.get(f"/v1/jobs/{victim.job_id}", headers=a)).json()
        assert theirs["prompt"] == SECRET_PROMPT and theirs["status"] == "succeeded"
        # And B's upload of an image with A's job id in its name reaches nothing of A's.
        edit = await client.post(
            "/v1/images/edits",
            files={"image": (f"../{victim.job_id}/source.png", png_bytes(64), "image/png")},
            data={"prompt": "B's edit"},
            headers=b,
        )
        assert edit.status_code == 200, edit.text
