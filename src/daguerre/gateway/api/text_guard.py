"""Odd text is refused at the edge, before anything stores or looks it up.

Python's ``str`` holds what no database or encoder will take: a JSON ``"\\ud800"``
escape decodes to a lone UTF-16 surrogate, which ``str.encode()`` refuses (a 500 once
the job was already accepted), and PostgreSQL refuses NUL in text. Control characters
(C0, DEL and C1) have no place in an image request either, except tab, newline and
carriage return in free text such as a prompt.

Such text is refused with a 400 (``invalid_value``, naming the field), never cleaned:
cleaning would change what the client asked for, without saying so, and an idempotent
retry of the same request would no longer match. The check covers every string of a
JSON body (keys and values, nested, and the extras a model ignores), the decoded path
and query, and the headers whose value is data (``Idempotency-Key``). Multipart text
fields are checked where the form is read (edits.py, through ``check_fields``).

A request with odd text never reaches a route, so nothing is looked up with it; one
that carries no credentials at all (no ``Authorization``, no signed-link ``sig``) on
an authenticated path gets the 401 it would have got anyway, so an anonymous caller
learns nothing from the check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daguerre.gateway.api import route_table
from daguerre.gateway.api.errors import BodyTooLarge, bad_request, error_response

# Lone surrogates, C0 controls, DEL and C1 controls.
_ODD_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The same, but tab, newline and carriage return are fine in free text.
_ODD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Headers whose value becomes data (hashed into a job id, stored, compared).
DATA_HEADERS = ("idempotency-key",)
# Paths every one of whose routes needs a key (or, for image files, a signed link).
_AUTHENTICATED = ("/v1/", "/admin/")
# Raw bytes that must be in a JSON body for it to hold any odd text once decoded: an
# escape (``\u0000``, ``\ud800``, ``\b``, ``\f``), DEL, the UTF-8 lead byte of C1
# controls (C2) or of encoded surrogates (ED), or a NUL byte (JSON in UTF-16 or -32,
# which json.loads also reads). A body without any of them is not parsed here.
_JSON_SUSPECTS = (b"\\", b"\x7f", b"\xc2", b"\xed", b"\x00")


class OddText(ValueError):
    """``field`` holds ``char``, which the service does not accept there."""

    def __init__(self, field: str, char: str) -> None:
        self.field = field
        self.char = char
        what = (
            "a lone UTF-16 surrogate"
            if "\ud800" <= char <= "\udfff"
            else f"the control character U+{ord(char):04X}"
        )
        super().__init__(
            f"Invalid value for '{field}': it contains {what}. Send valid Unicode text "
            "without control characters (tab, newline and carriage return are fine in "
            "free text such as a prompt)."
        )


def odd_char(value: str, *, free_text: bool = True) -> str | None:
    """The first character of ``value`` that is refused, or None. ``free_text``
    allows tab, newline and carriage return."""
    found = (_ODD_TEXT if free_text else _ODD_LINE).search(value)
    return found.group() if found is not None else None


def check(field: str, value: str, *, free_text: bool = True) -> None:
    """Raise OddText if ``value`` holds a refused character."""
    char = odd_char(value, free_text=free_text)
    if char is not None:
        raise OddText(field, char)


def check_fields(fields: Mapping[str, object], *, free_text: bool = True) -> None:
    """Check the names and string values of a form (or any flat mapping)."""
    for name, value in fields.items():
        check(f"{name!r} (a field name)", name, free_text=False)
        if isinstance(value, str):
            check(name, value, free_text=free_text)


def check_form(fields: Mapping[str, object]) -> None:
    """A 400 naming the first text field of a form (its name or value) that holds odd
    text; for forms read by hand (edits.read_form), which this middleware cannot see."""
    try:
        check_fields(fields)
    except OddText as odd:
        raise bad_request(str(odd), param=odd.field) from None


def check_json(document: Any) -> None:
    """Check every string of a decoded JSON document, keys included, at any depth.
    Iterative, so that a deeply nested document cannot exhaust the stack here."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            check(where or "body", value)
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and odd_char(key) is not None:
                    check(f"{where or 'body'} (a key)", key)
                stack.append((inner, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))


def _is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether FastAPI would parse this body as JSON: no Content-Type at all, or
    ``application/json`` or ``application/*+json``."""
    for name, value in headers:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or (
                kind.startswith(b"application/") and kind.endswith(b"+json")
            )
    return True


class TextGuardMiddleware:
    """Refuses requests with odd text in the path, the query, a data header or a JSON
    body (see the module's docstring). It must sit inside BodyLimitMiddleware, which
    bounds what it reads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_url(scope)
            self._check_headers(scope)
        except OddText as odd:
            await self._refuse(scope, odd)(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS") or not _is_json(
            scope.get("headers", [])
        ):
            await self.app(scope, receive, send)
            return
        try:
            body, more = await _read_body(receive)
        except BodyTooLarge as err:
            await error_response(413, str(err), code="request_too_large")(scope, receive, send)
            return
        try:
            _check_body(body)
        except OddText as odd:
            await self._refuse(scope, odd)(scope, receive, send)
            return
        await self.app(scope, _replay(body, more, receive), send)

    def _check_url(self, scope: Scope) -> None:
        path = scope.get("path", "")
        if odd_char(path, free_text=False) is not None:
            check(_path_field(scope), path, free_text=False)
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            for name, value in parse_qsl(query, keep_blank_values=True):
                check(f"{name!r} (a query parameter name)", name, free_text=False)
                check(name, value, free_text=False)

    def _check_headers(self, scope: Scope) -> None:
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").lower()
            if key in DATA_HEADERS:
                check(_header_name(key), value.decode("latin-1"), free_text=False)

    def _refuse(self, scope: Scope, odd: OddText) -> JSONResponse:
        if _anonymous(scope) and scope.get("path", "").startswith(_AUTHENTICATED):
            message = (
                "You didn't provide an API key. Send it in an Authorization header using "
                "Bearer auth (Authorization: Bearer YOUR_KEY)."
            )
            return error_response(401, message, code="invalid_api_key")
        return error_response(400, str(odd), param=odd.field, code="invalid_value")


def _path_field(scope: Scope) -> str:
    """The name of the path parameter that holds the odd text, when a route matches
    (the route is only matched, never run), else ``path``."""
    for match in route_table.matching(scope.get("app"), scope.get("path", "")):
        for name, value in match.params.items():
            if odd_char(value, free_text=False) is not None:
                return name
    return "path"


def _header_name(key: str) -> str:
    return "-".join(part.capitalize() for part in key.split("-"))


def _anonymous(scope: Scope) -> bool:
    for name, _ in scope.get("headers", []):
        if name == b"authorization":
            return False
    query = scope.get("query_string", b"").decode("latin-1")
    return not any(name == "sig" for name, _ in parse_qsl(query, keep_blank_values=True))


def _check_body(body: bytes) -> None:
    if not any(suspect in body for suspect in _JSON_SUSPECTS):
        return
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return  # not JSON: FastAPI answers that with its own 400
    check_json(document)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body; ``more`` is False once the client said it was done (it is True
    only if the connection ended first)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, disconnected: bool, receive: Receive) -> Receive:
    """A receive that hands the app the body read here, then the real channel (for
    the disconnect a streaming answer listens for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if disconnected:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
