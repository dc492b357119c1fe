"""Log lines lose URL credentials and queries, keys, bearer tokens and signatures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from daguerre.redact import (
    MASK,
    SecretFilter,
    install_log_redaction,
    redact,
    redact_url,
    uninstall_log_redaction,
)


def test_a_url_loses_userinfo_query_and_fragment() -> None:
    url = "https://hookuser:hunter2@hooks.example.com:8443/in/daguerre?token=S3CRET#frag"
    assert redact_url(url) == f"https://hooks.example.com:8443/in/daguerre?{MASK}"
    assert redact_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert redact_url("https://example.com/plain") == "https://example.com/plain"
    # Webhook logs keep only where it went: some hooks carry their token in the path.
    assert redact_url("https://u:p@discord.example/api/webhooks/1/T0K3N", path=False) == (
        "https://discord.example/..."
    )


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("POST to https://u:hunter2@h.example/p?token=S3CRET failed", "hunter2"),
        ("POST to https://u:hunter2@h.example/p?token=S3CRET failed", "S3CRET"),
        (
            '1.2.3.4:5 - "GET /v1/images/files/img_1?exp=99&sig=abcdef0123 HTTP/1.1" 200',
            "abcdef0123",
        ),
        ("Authorization: Bearer dg-AAAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAA"),
        ("key dg-BBBBBBBBBBBBBBBBBBBB leaked", "BBBBBBBB"),
        ("secret is whsec_CCCCCCCCCCCCCCCC", "CCCCCCCC"),
        ("form password=hunter2&user=x", "hunter2"),
        ("Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    ],
)
def test_secrets_are_masked_wherever_they_appear(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_harmless_text_is_left_alone() -> None:
    text = '127.0.0.1:5 - "GET /v1/jobs/job_1?limit=10 HTTP/1.1" 200'
    assert redact(text) == text
    assert redact("job job_1 succeeded in 0.4 s") == "job job_1 succeeded in 0.4 s"


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)


def test_the_filter_keeps_a_records_arguments_for_formatters_that_read_them() -> None:
    # uvicorn's access formatter unpacks exactly these five arguments.
    rec = record(
        '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/v1/images/files/x?sig=abc123", "1.1", 200
    )
    SecretFilter().filter(rec)
    assert isinstance(rec.args, tuple) and len(rec.args) == 5 and rec.args[4] == 200
    assert "abc123" not in rec.getMessage()


def test_a_secret_that_only_shows_in_the_whole_message_is_masked() -> None:
    rec = record("token=%s", "S3CRETVALUE")
    SecretFilter().filter(rec)
    assert "S3CRETVALUE" not in rec.getMessage()


def test_exception_text_is_redacted() -> None:
    try:
        raise RuntimeError("error for url 'https://u:hunter2@h.example/p?token=S3CRET'")
    except RuntimeError as err:
        rec = record("delivery failed", exc=err)
    SecretFilter().filter(rec)
    text = logging.Formatter().format(rec)
    assert "RuntimeError" in text and "h.example/p" in text
    assert "hunter2" not in text and "S3CRET" not in text


@pytest.fixture
def redaction() -> Iterator[None]:
    install_log_redaction()
    yield
    uninstall_log_redaction()


def test_installed_it_covers_every_logger_and_handler(
    redaction: None, caplog: pytest.LogCaptureFixture
) -> None:
    stream_records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            stream_records.append(self.format(rec))

    # A handler added after installing, as uvicorn adds its own.
    late = logging.getLogger("late.library")
    handler = Collect()
    late.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO):
            late.warning("calling %s", "https://u:hunter2@h.example/p?token=S3CRET")
            logging.getLogger("other").info("Bearer dg-DDDDDDDDDDDDDDDDDDDD")
    finally:
        late.removeHandler(handler)
    everything = caplog.text + "".join(stream_records)
    assert "h.example/p" in everything
    for secret in ("hunter2", "S3CRET", "DDDDDDDD"):
        assert secret not in everything, secret
