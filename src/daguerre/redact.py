"""Keep secrets out of logs: URLs lose their credentials, query strings and fragments,
and tokens that travel in text (Bearer credentials, API keys, webhook secrets, the
``sig=`` of a signed image link) are masked.

Customers put credentials in webhook URLs (``https://user:pass@host/hook?token=...``),
and uvicorn's access log writes every path with its query string, signed image links
included. A log file is read by more people, and kept longer, than the database; so
every log record of a gateway or worker process goes through :class:`SecretFilter`
(``install_log_redaction`` hooks it into record creation, so handlers that libraries
add later, such as uvicorn's, are covered too).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "[redacted]"

# scheme://authority/path?query#fragment, up to the next space, quote or bracket.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")
# A bare path with a query string, as in access logs: /v1/images/files/x?exp=..&sig=..
_PATH_QUERY = re.compile(r"(?<![\w/.:])(/[^\s?\"'<>`]*)\?([^\s\"'<>`#]*)")
# name=value pairs whose value is a secret, wherever they appear.
_SECRET_PARAM = re.compile(
    r"(?i)\b((?:access_|api_|auth_|refresh_|id_)?token|sig|signature|secret|password|"
    r"passwd|pwd|api[_-]?key|key|client_secret|credentials?)=([^\s&;,\"'#]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
# This service's own secrets, by their prefixes (API keys, webhook signing secrets).
_OWN_SECRETS = re.compile(r"\b(dg-|whsec_)[A-Za-z0-9_-]{8,}")
# Text without any of these has nothing the patterns above could mask.
_HINT = re.compile(r"://|[=?]|dg-|whsec_|(?i:bearer|basic)\s")


def redact_url(url: str, *, path: bool = True) -> str:
    """``url`` without userinfo, query string or fragment (``?[redacted]`` says there was
    a query), and without its path too unless ``path`` (some webhook URLs carry their
    token in the path, e.g. /api/webhooks/ID/TOKEN). Text that does not parse as a URL is
    masked whole rather than let through."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    if not path:
        return f"{parts.scheme}://{netloc}/..."
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact(text: str) -> str:
    """``text`` with every URL redacted and secret-looking tokens masked."""
    if not _HINT.search(text):  # most lines: one cheap look
        return text
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _PATH_QUERY.sub(
        lambda m: f"{m.group(1)}?{_SECRET_PARAM.sub(_mask_param, m.group(2))}", text
    )
    text = _SECRET_PARAM.sub(_mask_param, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _OWN_SECRETS.sub(lambda m: f"{m.group(1)}{MASK}", text)


def _mask_param(match: re.Match[str]) -> str:
    return f"{match.group(1)}={MASK}"


def _redact_arg(value: Any) -> Any:
    # Numbers keep their type: the message may format them with %d.
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    # Other objects keep their type (for %r, say) unless their text holds a secret.
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class SecretFilter(logging.Filter):
    """Redacts a record in place (message, arguments, exception text); drops nothing.

    String arguments are redacted one by one, so that formatters which read a record's
    arguments (uvicorn's access log does) still find them; a secret that only shows once
    the message is put together (``"token=%s"``) collapses the record to its redacted
    text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_arg(a) for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: _redact_arg(v) for k, v in record.args.items()}
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a bad format: logging reports it itself
                message = None
            if message is not None and redact(message) != message:
                record.msg, record.args = redact(message), ()
        elif record.msg is not None:
            record.msg = redact(str(record.msg))
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # Formatted now, redacted, and kept as the text every formatter will use:
            # exception messages carry URLs too (httpx puts the request's URL in them).
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(text).rstrip("\n")
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_installed: list[Callable[..., logging.LogRecord]] = []
_httpx_levels: list[int] = []


def install_log_redaction() -> None:
    """Run :class:`SecretFilter` on every log record this process creates, whichever
    logger or handler it goes to (idempotent). Also quiets httpx's per-request INFO
    line, whose URL keeps its path (webhook paths may hold tokens)."""
    if _installed:
        return
    httpx_log = logging.getLogger("httpx")
    _httpx_levels.append(httpx_log.level)
    if httpx_log.level < logging.WARNING:
        httpx_log.setLevel(logging.WARNING)
    previous = logging.getLogRecordFactory()
    scrub = SecretFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub.filter(record)
        return record

    _installed.append(previous)
    logging.setLogRecordFactory(factory)


def uninstall_log_redaction() -> None:
    """Undo :func:`install_log_redaction` (for tests)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())
        logging.getLogger("httpx").setLevel(_httpx_levels.pop())
