"""The bad-input corpus (issue 14): odd text, odd images, bombs, oversize bodies, deep
JSON, huge numbers and wrong types, against the job, image and conversation APIs.

Every refusal must be a 4xx with OpenAI's error body and a ``code`` (so a client can
branch on it), never a 5xx and never a traceback; a refused request leaves nothing
behind (no job accepted and then broken, which a retry would duplicate). Odd text is
refused, not cleaned (see gateway/api/text_guard.py for why).

On SQLite in-process for all of it; the text cases that once broke PostgreSQL only
(NUL, surrogates) run there too, when a server answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from daguerre.store.tables import JobRow
from tests.support.engine import png_bytes
from tests.support.inprocess import MAX_UPLOAD_BYTES, InProcess, build, serve
from tests.support.odd_images import REFUSED, TOLERATED
from tests.support.postgres import throwaway_database
from tests.support.victim import Victim, seed

# Text no field may hold. Tab, newline and carriage return are fine in free text.
ODD_TEXT = {
    "surrogate": "a\ud800b",
    "low-surrogate": "\udfff",
    "nul": "abc\x00def",
    "escape": "red \x1b[31mcircle",
    "bell": "\x07",
    "del": "x\x7f",
    "c1": "x\x85y",
}
# Per endpoint, a valid body and the text fields to spoil one at a time.
VALID_JOB = {"prompt": "a red circle", "size": "64x64"}
TEXT_FIELDS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "POST /v1/jobs": (
        VALID_JOB,
        ["prompt", "model", "size", "user", "id", "webhook_url", "background", "quality"],
    ),
    "POST /v1/images/generations": (VALID_JOB, ["prompt", "model", "size", "user", "style"]),
    "POST /v1/conversations": ({"title": "a chat"}, ["title"]),
    "PATCH /v1/conversations/{conversation_id}": ({"title": "a chat"}, ["title"]),
    "POST /v1/conversations/{conversation_id}/turns": (
        {"prompt": "a red circle", "mode": "new"},
        ["prompt", "model", "size", "output_format"],
    ),
}
JSON_ROUTES = list(TEXT_FIELDS)


@dataclass
class Probe:
    """One request of the corpus."""

    name: str
    method: str
    path: str  # may name {conversation_id}, {job_id}, {image_id}: A's own
    content: bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    files: Callable[[], Any] | None = None  # httpx's files=: a dict or a list of pairs
    data: dict[str, str] | None = None
    key: str | bytes = "a"  # "a", "none", or a raw Authorization value
    tolerated: bool = False  # a 2xx is also right (a real, if odd, image)


def _json(body: Any) -> bytes:
    # ensure_ascii: a lone surrogate travels as the "\ud800" escape, as clients send it.
    return json.dumps(body).encode()


def text_probes() -> list[Probe]:
    probes = []
    for route, (valid, fields) in TEXT_FIELDS.items():
        method, path = route.split(" ")
        for name in fields:
            for kind, odd in ODD_TEXT.items():
                body = {**valid, name: odd}
                probes.append(Probe(f"{route} {name}={kind}", method, path, _json(body)))
        # In a key the models ignore, and in a nested extra.
        probes.append(Probe(f"{route} key=nul", method, path, _json({**valid, "x\x00": 1})))
        extra = {**valid, "metadata": {"a": ["\ud800"]}}
        probes.append(Probe(f"{route} nested=surrogate", method, path, _json(extra)))
    form_fields = ["prompt", "model", "size", "user"]
    for name in form_fields:
        for kind in ("nul", "surrogate", "escape"):
            value = ODD_TEXT[kind].encode("utf-8", "surrogatepass").decode("latin-1")
            probes.append(
                Probe(
                    f"POST /v1/images/edits {name}={kind}",
                    "POST",
                    "/v1/images/edits",
                    files=lambda: {"image": ("a.png", png_bytes(64), "image/png")},
                    data={"prompt": "a red circle", name: value},
                )
            )
    return probes


def place_probes() -> list[Probe]:
    """Odd text in the path, the query and the headers."""
    probes = []
    for kind in ("nul", "surrogate", "escape"):
        raw = ODD_TEXT[kind].encode("utf-8", "surrogatepass")
        quoted = "".join(f"%{b:02X}" for b in raw)
        for path in (
            "/v1/jobs/{x}",
            "/v1/jobs/{x}/events",
            "/v1/images/files/{x}",
            "/v1/conversations/{x}",
        ):
            probes.append(Probe(f"GET {path} {kind}", "GET", path.replace("{x}", quoted)))
        # No key at all: the image lookup must not run before authentication.
        probes.append(
            Probe(
                f"GET /v1/images/files {kind} no key",
                "GET",
                f"/v1/images/files/a{quoted}b",
                key="none",
            )
        )
        probes.append(
            Probe(
                f"GET signed link sig={kind}",
                "GET",
                f"/v1/images/files/{{image_id}}?exp=99999999999&sig={quoted}",
                key="none",
            )
        )
        probes.append(
            Probe(
                f"GET signed link exp={kind}",
                "GET",
                f"/v1/images/files/{{image_id}}?exp={quoted}&sig=00",
                key="none",
            )
        )
        probes.append(
            Probe(
                f"POST /v1/jobs Idempotency-Key {kind}",
                "POST",
                "/v1/jobs",
                _json(VALID_JOB),
                headers={"Idempotency-Key": b"key-" + raw},
            )
        )
        probes.append(
            Probe(
                f"GET /v1/models Authorization {kind}", "GET", "/v1/models", key=b"Bearer sk-" + raw
            )
        )
    return probes


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# Bodies no route takes: wrong shape, depth or size.
HUGE_INT = b"1" + b"0" * 5000  # past Python's 4300-digit limit for parsing an int
ANY_ROUTE_BODIES: dict[str, bytes] = {
    "deep-list-body": _deep(10_000),
    "deep-list-field": b'{"prompt": "x", "title": "x", "user": ' + _deep(10_000) + b"}",
    "deep-object-field": b'{"prompt": "x", "title": "x", "user": '
    + b'{"a":' * 5_000
    + b"1"
    + b"}" * 5_001,
    "huge-int-extra": b'{"prompt": "x", "title": "x", "extra": ' + HUGE_INT + b"}",
    "body-list": b"[]",
    "body-string": b'"a red circle"',
    "body-number": b"1e400",
    "body-truncated": b'{"prompt": "a red',
    "body-invalid-utf8": b'{"prompt": "\xff\xfe", "title": "\xff"}',
    "body-over-limit": _json({"prompt": "x", "title": "x", "user": "u" * 1_100_000}),
}
# Fields of the wrong type or out of range, per route (each route ignores the fields
# it does not know, as OpenAI's API does, so each gets only its own).
PROMPT_TYPES: dict[str, bytes] = {
    "prompt-number": b'{"prompt": 123}',
    "prompt-list": b'{"prompt": ["a"]}',
    "prompt-object": b'{"prompt": {"a": 1}}',
    "prompt-null": b'{"prompt": null}',
    "prompt-blank": b'{"prompt": "   "}',
    "prompt-huge": _json({"prompt": "x" * 40_000}),
}
RENDER_TYPES: dict[str, bytes] = {
    **PROMPT_TYPES,
    "n-huge-int": b'{"prompt": "x", "n": ' + HUGE_INT + b"}",
    "n-huge-float": b'{"prompt": "x", "n": 1e400}',
    "n-negative": b'{"prompt": "x", "n": -1}',
    "n-fraction": b'{"prompt": "x", "n": 1.5}',
    "n-string": b'{"prompt": "x", "n": "two"}',
    "n-nan": b'{"prompt": "x", "n": NaN}',
    "compression-nan": b'{"prompt": "x", "output_compression": NaN}',
    "compression-infinity": b'{"prompt": "x", "output_compression": -Infinity}',
    "size-huge": b'{"prompt": "x", "size": "99999x99999"}',
    "size-negative": b'{"prompt": "x", "size": "-64x-64"}',
    "size-number": b'{"prompt": "x", "size": 64}',
    "format-unknown": b'{"prompt": "x", "output_format": "gif"}',
}
BODIES_BY_ROUTE: dict[str, dict[str, bytes]] = {
    "POST /v1/jobs": {
        **RENDER_TYPES,
        "seed-huge-int": b'{"prompt": "x", "seed": ' + HUGE_INT + b"}",
        "seed-negative": b'{"prompt": "x", "seed": -1}',
        "steps-infinity": b'{"prompt": "x", "steps": Infinity}',
        "steps-zero": b'{"prompt": "x", "steps": 0}',
        "id-slash": b'{"prompt": "x", "id": "../../etc"}',
        "id-long": _json({"prompt": "x", "id": "a" * 500}),
        "webhook-number": b'{"prompt": "x", "webhook_url": 1}',
        "body-null": b"null",
        "body-empty": b"",
    },
    "POST /v1/images/generations": {
        **RENDER_TYPES,
        "partial-images-huge": b'{"prompt": "x", "stream": true, "partial_images": 1e9}',
        "stream-string": b'{"prompt": "x", "stream": "yes please"}',
        "response-format-unknown": b'{"prompt": "x", "response_format": "file"}',
        "body-null": b"null",
        "body-empty": b"",
    },
    "POST /v1/conversations": {
        "title-number": b'{"title": 123}',
        "title-list": b'{"title": ["a"]}',
        "title-huge": _json({"title": "t" * 10_000}),
    },
    "PATCH /v1/conversations/{conversation_id}": {
        "title-number": b'{"title": 123}',
        "title-null": b'{"title": null}',
        "title-huge": _json({"title": "t" * 10_000}),
        "body-null": b"null",
        "body-empty": b"",
    },
    "POST /v1/conversations/{conversation_id}/turns": {
        **PROMPT_TYPES,
        "mode-unknown": b'{"prompt": "x", "mode": "rewrite"}',
        "from-turn-huge-int": b'{"prompt": "x", "mode": "edit", "from_turn": ' + HUGE_INT + b"}",
        "from-turn-zero": b'{"prompt": "x", "mode": "edit", "from_turn": 0}',
        "from-turn-missing": b'{"prompt": "x", "mode": "edit", "from_turn": 999999}',
        "size-huge": b'{"prompt": "x", "mode": "new", "size": "99999x99999"}',
        "body-null": b"null",
        "body-empty": b"",
    },
}


def shape_probes() -> list[Probe]:
    probes = []
    for route in JSON_ROUTES:
        method, path = route.split(" ")
        bodies = {**ANY_ROUTE_BODIES, **BODIES_BY_ROUTE.get(route, {})}
        for name, body in bodies.items():
            probes.append(Probe(f"{route} {name}", method, path, body))
    # JSON in UTF-16 is still JSON (json.loads reads it): taking it is right too.
    utf16 = '{"prompt": "x"}'.encode("utf-16")
    probes.append(Probe("POST /v1/jobs body-utf16", "POST", "/v1/jobs", utf16, tolerated=True))
    probes.append(
        Probe(
            "POST /v1/jobs text/plain",
            "POST",
            "/v1/jobs",
            _json(VALID_JOB),
            headers={"Content-Type": "text/plain"},
        )
    )
    probes.append(Probe("POST /v1/images/edits json", "POST", "/v1/images/edits", _json(VALID_JOB)))
    return probes


def _upload(
    data: Callable[[], bytes], name: str = "a.png", field: str = "image"
) -> Callable[[], dict[str, Any]]:
    return lambda: {field: (name, data(), "image/png")}


def _with_mask(mask: Callable[[], bytes]) -> Callable[[], dict[str, Any]]:
    return lambda: {
        "image": ("a.png", png_bytes(32), "image/png"),
        "mask": ("m.png", mask(), "image/png"),
    }


def image_probes() -> list[Probe]:
    edit = "/v1/images/edits"
    form = {"prompt": "make it blue"}
    probes = [
        Probe(f"edit image={name}", "POST", edit, files=_upload(make), data=form)
        for name, make in REFUSED.items()
    ]
    probes += [
        Probe(f"edit image={name}", "POST", edit, files=_upload(make), data=form, tolerated=True)
        for name, make in TOLERATED.items()
    ]
    probes += [
        Probe(
            f"edit mask={name}",
            "POST",
            edit,
            files=_with_mask(make),
            data=form,
        )
        for name, make in REFUSED.items()
    ]
    oversize = bytes(MAX_UPLOAD_BYTES + 1024)
    probes.append(Probe("edit oversize", "POST", edit, files=_upload(lambda: oversize), data=form))
    probes.append(
        Probe(
            "edit too many images",
            "POST",
            edit,
            files=lambda: [("image[]", (f"{i}.png", png_bytes(8), "image/png")) for i in range(40)],
            data=form,
        )
    )
    probes.append(
        Probe("edit image as text field", "POST", edit, data={**form, "image": "not a file"})
    )
    probes.append(
        Probe("edit no image", "POST", edit, files=lambda: {"x": ("x", b"", "a/b")}, data=form)
    )
    return probes


ALL = text_probes() + place_probes() + shape_probes() + image_probes()


@dataclass
class Corpus:
    target: InProcess
    client: httpx.AsyncClient
    victim: Victim


@pytest.fixture(scope="module")
async def corpus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Corpus]:
    target = build(tmp_path_factory.mktemp("corpus"))
    async with serve(target) as client:
        yield Corpus(target, client, await seed(client, target))


def job_count(target: InProcess) -> int:
    with target.store.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(JobRow)).scalar_one())


async def send(corpus: Corpus, probe: Probe) -> httpx.Response:
    v, target = corpus.victim, corpus.target
    path = probe.path.format(
        conversation_id=v.conversation_id, job_id=v.job_id, image_id=v.image_ids[0]
    )
    headers: dict[str, Any] = dict(probe.headers)
    if probe.key == "a":
        headers.update(target.bearer(target.key_a))
    elif probe.key != "none":
        headers["Authorization"] = probe.key
    if probe.content is not None:
        headers.setdefault("Content-Type", "application/json")
    return await corpus.client.request(
        probe.method,
        path,
        content=probe.content,
        headers=headers,
        files=probe.files() if probe.files else None,
        data=probe.data,
    )


def assert_refused(probe: Probe, response: httpx.Response) -> None:
    where = f"{probe.name}: {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, where
    assert "Traceback" not in response.text and 'File "' not in response.text, where
    if probe.tolerated and response.status_code < 300:
        return
    assert 400 <= response.status_code < 500, where
    error = response.json()["error"]
    assert error["message"] and isinstance(error["code"], str), where


@pytest.mark.parametrize("probe", ALL, ids=lambda p: p.name)
async def test_bad_input_is_a_4xx_with_a_code(corpus: Corpus, probe: Probe) -> None:
    before = job_count(corpus.target)
    started = time.monotonic()
    response = await send(corpus, probe)
    elapsed = time.monotonic() - started
    assert_refused(probe, response)
    if response.status_code >= 400:  # a refusal leaves no job behind
        assert job_count(corpus.target) == before, probe.name
    # Bombs and oversize bodies are refused before the work they would cost.
    assert elapsed < 5, f"{probe.name} took {elapsed:.1f} s"


async def test_after_the_corpus_every_job_of_a_still_reads(corpus: Corpus) -> None:
    """No job was left half-accepted: every job A has answers a GET (the surrogate once
    left one answering 500 for good)."""
    target = corpus.target
    a = target.bearer(target.key_a)
    with target.store.db.connect() as conn:
        jobs = JobRow.__table__
        client_id = jobs.c.get("client_id", jobs.c.id)  # before ids were per account: the id
        rows = conn.execute(
            select(jobs.c.id, client_id).where(jobs.c.account_id == target.account_a)
        ).all()
    for job_id in (client or row for row, client in rows):
        response = await corpus.client.get(f"/v1/jobs/{job_id}", headers=a)
        assert response.status_code == 200, (job_id, response.text)


POSTGRES_PROBES = [
    p
    for p in ALL
    if any(k in p.name for k in ("=nul", "=surrogate", " nul", " surrogate"))
    and "edits" not in p.name
]


async def test_nul_and_surrogates_on_postgresql(tmp_path: Path) -> None:
    """PostgreSQL refuses NUL in text outright, where SQLite stores it: the text must be
    refused at the edge, before any query, whatever the database."""
    with throwaway_database() as url:
        target = build(tmp_path, database_url=url)
        try:
            async with serve(target) as client:
                corpus = Corpus(target, client, await seed(client, target))
                failures = []
                for probe in POSTGRES_PROBES:
                    response = await send(corpus, probe)
                    try:
                        assert_refused(probe, response)
                    except AssertionError as err:
                        failures.append(str(err))
                assert not failures, "\n".join(failures)
        finally:
            target.store.close()
