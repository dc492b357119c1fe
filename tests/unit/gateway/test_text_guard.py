"""Odd text (lone surrogates, NUL, control characters) is a 400 naming the field, on
SQLite and on PostgreSQL, and never reaches the store: before, a surrogate in a prompt
was accepted (202) and then answered 500 for good, and NUL gave 500s on PostgreSQL,
one of them (an image lookup) with no key at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from daguerre.config import Settings
from daguerre.gateway.api import text_guard
from tests.support.engine import png_bytes
from tests.unit.gateway.conftest import Gateway, running_gateway
from tests.unit.gateway.test_errors import error_of
from tests.unit.store.conftest import _reset_postgres, postgres_url  # noqa: F401 (fixture)

JSON = {"Content-Type": "application/json"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    url = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    yield url


@pytest.fixture
async def any_db(tmp_path: Path, database_url: str | None) -> AsyncIterator[Gateway]:
    """The gateway of conftest.py, on SQLite and on PostgreSQL."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        events_poll_interval_s=0.02,
        max_body_bytes=100_000,
    )
    async with running_gateway(settings) as gateway:
        yield gateway


def no_jobs(gateway: Gateway) -> bool:
    return gateway.engine.submitted == [] and gateway.store.queue_stats.backlog("api") == 0


# --- the checks themselves ----------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x1b", "\x7f", "\x85", "\x9f"])
def test_control_characters_are_odd(char: str) -> None:
    assert text_guard.odd_char(f"a{char}b") == char


@pytest.mark.parametrize("char", ["\ud800", "\udfff", "\udc00"])
def test_lone_surrogates_are_odd(char: str) -> None:
    assert text_guard.odd_char(f"a{char}b") == char


def test_tab_newline_and_return_are_fine_in_free_text_only() -> None:
    assert text_guard.odd_char("a\tb\nc\r\nd") is None
    assert text_guard.odd_char("a\nb", free_text=False) == "\n"
    assert text_guard.odd_char("café 🎨 ünïcode \u200b") is None


def test_json_is_checked_everywhere_and_names_the_place() -> None:
    with pytest.raises(text_guard.OddText) as found:
        text_guard.check_json({"prompt": "a", "extra": {"k": ["ok", "x\x00"]}})
    assert found.value.field == "extra.k[1]"
    with pytest.raises(text_guard.OddText) as found:
        text_guard.check_json({"meta": {"bad\ud800key": 1}})
    assert found.value.field == "meta (a key)"
    deep: Any = "x\x00"
    for _ in range(50_000):  # iterative: no RecursionError
        deep = [deep]
    with pytest.raises(text_guard.OddText):
        text_guard.check_json(deep)


# --- JSON bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/images/generations"])
@pytest.mark.parametrize(
    "raw",
    [
        b'{"prompt": "a cat \\ud800", "size": "64x64"}',  # the JSON escape
        b'{"prompt": "a cat \\udc00\\ud800", "size": "64x64"}',  # reversed pair
        b'{"prompt": "a cat \xed\xa0\x80", "size": "64x64"}',  # surrogate encoded as UTF-8
        '{"prompt": "a cat \ud800", "size": "64x64"}'.encode("utf-16-le", "surrogatepass"),
    ],
)
async def test_lone_surrogate_in_prompt_is_400_and_no_job(
    any_db: Gateway, path: str, raw: bytes
) -> None:
    headers = {**any_db.auth(), **JSON}
    error = error_of(await any_db.client.post(path, content=raw, headers=headers), 400)
    assert error["param"] == "prompt"
    assert error["code"] == "invalid_value"
    assert "surrogate" in error["message"]
    assert no_jobs(any_db)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/images/generations"])
@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
async def test_nul_and_control_characters_in_prompt_are_400(
    any_db: Gateway, path: str, char: str
) -> None:
    body = {"prompt": f"a{char}cat", "size": "64x64"}
    error = error_of(await any_db.client.post(path, json=body, headers=any_db.auth()), 400)
    assert error["param"] == "prompt"
    assert f"U+{ord(char):04X}" in error["message"]
    assert no_jobs(any_db)


async def test_tab_and_newlines_in_a_prompt_are_fine(gateway: Gateway) -> None:
    body = {"prompt": "a cat\n\tin a hat\r\n", "size": "64x64"}
    response = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert response.status_code == 202, response.text


async def test_odd_text_in_ignored_extras_and_other_fields_is_400(any_db: Gateway) -> None:
    body = {"prompt": "a", "size": "64x64", "metadata": {"tags": ["ok", "b\x00d"]}}
    response = await any_db.client.post("/v1/jobs", json=body, headers=any_db.auth())
    assert error_of(response, 400)["param"] == "metadata.tags[1]"
    for field in ("model", "user", "size"):
        body = {"prompt": "a", field: "x\x00"}
        response = await any_db.client.post("/v1/jobs", json=body, headers=any_db.auth())
        assert error_of(response, 400)["param"] == field
    assert no_jobs(any_db)


async def test_nul_in_a_conversation_title_is_400(any_db: Gateway) -> None:
    response = await any_db.client.post(
        "/v1/conversations", json={"title": "t\x00"}, headers=any_db.auth()
    )
    assert error_of(response, 400)["param"] == "title"
    assert any_db.store.conversations.list_for("x") == []


async def test_deeply_nested_json_is_400_with_a_code(gateway: Gateway) -> None:
    raw = b'{"prompt": "a", "x": ' + b"[" * 40_000 + b"]" * 40_000 + b"}"
    headers = {**gateway.auth(), **JSON}
    error = error_of(await gateway.client.post("/v1/jobs", content=raw, headers=headers), 400)
    assert error["code"]


# --- path, query and headers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [
        ("GET", "/v1/jobs/ab%00cd", "job_id"),
        ("DELETE", "/v1/jobs/%00", "job_id"),
        ("GET", "/v1/jobs/ab%01cd/events", "job_id"),
        ("GET", "/v1/conversations/c%00", "conversation_id"),
        ("GET", "/v1/images/files/abc%00def", "image_id"),
        ("GET", "/v1/images/files/abc%C2%85def", "image_id"),
        ("GET", "/v1/jobs/abc?x=%00", "x"),
        ("GET", "/v1/images/files/abc?exp=1&sig=%00", "sig"),
    ],
)
async def test_odd_text_in_path_or_query_is_400(
    any_db: Gateway, method: str, path: str, param: str
) -> None:
    response = await any_db.client.request(method, path, headers=any_db.auth())
    error = error_of(response, 400)
    assert error["param"] == param
    assert error["code"] == "invalid_value"


async def test_odd_text_without_a_key_is_401(any_db: Gateway) -> None:
    """The image file route takes no key for a signed link; without a key and without
    a signature, odd text gets the 401 any request without a key gets."""
    for method, path in [
        ("GET", "/v1/images/files/abc%00def"),
        ("GET", "/v1/jobs/%00"),
        ("DELETE", "/admin/tiers/%00"),
    ]:
        response = await any_db.client.request(method, path)
        assert error_of(response, 401)["code"] == "invalid_api_key"
    raw = b'{"prompt": "\\u0000"}'
    response = await any_db.client.post("/v1/jobs", content=raw, headers=JSON)
    error_of(response, 401)


async def test_odd_idempotency_key_is_400(gateway: Gateway) -> None:
    body = {"prompt": "a", "size": "64x64"}
    for key in (b"abc\x01", b"a\x85b", b"a\tb"):
        headers = {**gateway.auth(), "Idempotency-Key": key}  # type: ignore[dict-item]
        response = await gateway.client.post("/v1/images/generations", json=body, headers=headers)
        assert error_of(response, 400)["param"] == "Idempotency-Key"
    assert no_jobs(gateway)


# --- multipart (edits) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": "a\x00b"}, "prompt"),
        ({"prompt": "a", "size": "64x64\x00"}, "size"),
        ({"prompt": "a", "user": "\ud800"}, "user"),
    ],
)
async def test_odd_text_in_an_edit_form_is_400(
    any_db: Gateway, fields: dict[str, str], param: str
) -> None:
    files = {"image": ("a.png", png_bytes(64), "image/png")}
    data = {k: v.encode("utf-8", "surrogatepass") for k, v in fields.items()}
    response = await any_db.client.post(
        "/v1/images/edits", files=files, data=data, headers=any_db.auth()
    )
    assert error_of(response, 400)["param"] == param
    assert no_jobs(any_db)


async def test_a_chunked_body_over_the_limit_is_still_413(gateway: Gateway) -> None:
    """The guard reads JSON bodies whole; BodyLimitMiddleware still bounds what it reads
    when no Content-Length announces the size."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"prompt": "\\u0000' + b"x" * 60_000
        yield b"x" * 60_000 + b'"}'

    headers = {**gateway.auth(), **JSON}
    response = await gateway.client.post("/v1/jobs", content=chunks(), headers=headers)
    assert error_of(response, 413)["code"] == "request_too_large"
