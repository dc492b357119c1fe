"""The notify activity outside Temporal: where it may connect (checked before any
connection, on the address it connects to), how it signs (per account, rotatable), how
it treats failing destinations, and what it logs."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from daguerre.config import Settings
from daguerre.domain import Account, JobSpec, JobStatus
from daguerre.engine.contracts import NotifyInput
from daguerre.redact import install_log_redaction, uninstall_log_redaction
from daguerre.store import Store, open_store
from daguerre.store.tables import utcnow
from daguerre.store.webhook_secrets import WebhookSecrets
from daguerre.workers import webhooks
from daguerre.workers.webhook_breaker import DestinationBreaker
from daguerre.workers.webhooks import (
    CIRCUIT_OPEN,
    REDIRECTED,
    REFUSED,
    SIGNATURE_HEADER,
    WebhookActivities,
    signing_secrets,
    verify,
)
from tests.support.webhooks import scripted_resolver, silent_listener
from tests.unit.test_webhook_guard import REFUSED as REFUSED_URLS

PUBLIC = "93.184.216.34"
SPEC = JobSpec(prompt="hook", model="fake", width=64, height=64, steps=2)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def final_job(store: Store, account: Account, url: str, job_id: str = "job-1") -> str:
    store.jobs.create(job_id, account.id, "api", SPEC, webhook_url=url)
    store.jobs.finish(job_id, JobStatus.FAILED, "it failed", "render_failed")
    return job_id


class Recorder:
    """A transport that answers ``status`` and keeps every request it was given."""

    def __init__(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.headers = headers or {}

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(self.status, headers=self.headers)

        return httpx.MockTransport(handle)


resolver = scripted_resolver


def activities(
    store: Store, settings: Settings, recorder: Recorder | None = None, **kw: Any
) -> WebhookActivities:
    transport = recorder.transport() if recorder is not None else None
    kw.setdefault("resolver", resolver([PUBLIC]))
    return WebhookActivities(store, settings, transport=transport, **kw)


# --- where it connects ---------------------------------------------------------------


@pytest.mark.parametrize("url", [u for u in REFUSED_URLS if u.startswith("http")])
async def test_refused_destinations_are_refused_before_any_connection(
    store: Store, settings: Settings, url: str
) -> None:
    account = store.accounts.create_account("a", "pro", "api")
    final_job(store, account, url)
    recorder = Recorder()
    with pytest.raises(ApplicationError) as caught:
        await activities(store, settings, recorder).notify(NotifyInput("job-1"))
    assert caught.value.type == REFUSED and caught.value.non_retryable
    assert recorder.requests == []


@pytest.mark.parametrize(
    "answer", [["127.0.0.1"], ["10.0.0.8"], ["169.254.169.254"], ["::1"], [PUBLIC, "192.168.0.1"]]
)
async def test_a_name_that_resolves_inside_is_refused(
    store: Store, settings: Settings, answer: list[str]
) -> None:
    account = store.accounts.create_account("a", "pro", "api")
    final_job(store, account, "https://sneaky.example/hook")
    recorder = Recorder()
    acts = activities(store, settings, recorder, resolver=resolver(answer))
    with pytest.raises(ApplicationError) as caught:
        await acts.notify(NotifyInput("job-1"))
    assert caught.value.type == REFUSED and caught.value.non_retryable
    assert recorder.requests == []


@pytest.fixture
def listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A socket on 127.0.0.1 that records every connection made to it."""
    with silent_listener(16) as listening:
        yield listening


async def test_a_real_socket_on_loopback_gets_no_connection_in_any_notation(
    store: Store, settings: Settings, listener: tuple[int, list[socket.socket]]
) -> None:
    port, accepted = listener
    account = store.accounts.create_account("a", "pro", "api")
    hosts = ["127.0.0.1", "localhost", "0x7f000001", "2130706433", "0177.0.0.1", "127.1"]
    hosts += ["[::ffff:127.0.0.1]", "loopback.example"]
    acts = WebhookActivities(store, settings, resolver=resolver(["127.0.0.1"]))
    for i, host in enumerate(hosts):
        job_id = final_job(store, account, f"http://{host}:{port}/hook", f"job-{i}")
        with pytest.raises(ApplicationError):
            await acts.notify(NotifyInput(job_id))
    assert accepted == []


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    got: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()


async def test_an_allow_listed_internal_destination_is_delivered(
    tmp_path: Path, receiver: tuple[str, list[tuple[str, dict[str, str], bytes]]]
) -> None:
    address, got = receiver
    settings = Settings(data_dir=tmp_path, webhook_allow=["127.0.0.0/8"])
    store = open_store(settings)
    try:
        account = store.accounts.create_account("a", "pro", "api")
        final_job(store, account, f"http://hookuser:hunter2@{address}/hook?token=T0K")
        out = await WebhookActivities(store, settings).notify(NotifyInput("job-1"))
        secret = store.accounts.webhook_secrets(account.id)
    finally:
        store.close()
    assert out.delivered
    path, headers, body = got[0]
    assert path == "/hook?token=T0K"
    assert headers["host"] == address
    assert headers["authorization"].startswith("Basic ")  # the URL's credentials
    signature = headers[SIGNATURE_HEADER.lower()]
    assert secret is not None and verify(secret.current, signature, body)


async def test_it_connects_to_the_address_it_checked(store: Store, settings: Settings) -> None:
    """DNS rebinding: the name answers a public address for the check and a private
    one afterwards; the request still goes to the public one, with the name as Host
    and as TLS's server name."""
    account = store.accounts.create_account("a", "pro", "api")
    final_job(store, account, "https://rebind.example:8443/hook")
    recorder = Recorder()
    resolve = resolver([PUBLIC], ["127.0.0.1"])
    await activities(store, settings, recorder, resolver=resolve).notify(NotifyInput("job-1"))
    (request,) = recorder.requests
    assert request.url.host == PUBLIC and request.url.port == 8443
    assert request.headers["host"] == "rebind.example:8443"
    assert request.extensions["sni_hostname"] == "rebind.example"
    assert resolve.calls == ["rebind.example"]  # type: ignore[attr-defined]


async def test_a_redirect_is_not_followed_and_fails_for_good(
    store: Store, settings: Settings
) -> None:
    account = store.accounts.create_account("a", "pro", "api")
    final_job(store, account, "https://hooks.example/hook")
    recorder = Recorder(302, {"location": "http://127.0.0.1/admin"})
    with pytest.raises(ApplicationError) as caught:
        await activities(store, settings, recorder).notify(NotifyInput("job-1"))
    assert caught.value.type == REDIRECTED and caught.value.non_retryable
    assert len(recorder.requests) == 1


async def test_a_long_answer_is_read_only_up_to_the_cap(store: Store, settings: Settings) -> None:
    account = store.accounts.create_account("a", "pro", "api")
    final_job(store, account, "https://hooks.example/hook")
    sent = {"bytes": 0}

    async def endless() -> Any:
        while True:
            sent["bytes"] += 16_384
            yield b"x" * 16_384

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=endless()))
    acts = WebhookActivities(store, settings, transport=transport, resolver=resolver([PUBLIC]))
    assert (await acts.notify(NotifyInput("job-1"))).delivered
    assert sent["bytes"] <= webhooks.MAX_RESPONSE_BYTES + 16_384


# --- failing destinations ------------------------------------------------------------


async def test_a_failing_destination_backs_off_then_trips_its_breaker(
    store: Store, settings: Settings
) -> None:
    account = store.accounts.create_account("a", "pro", "api")
    recorder = Recorder(503)
    breaker = DestinationBreaker(threshold=3, cooloff_s=60, backoff_max_s=60)
    acts = activities(store, settings, recorder, breaker=breaker)
    delays = []
    for i in range(3):
        final_job(store, account, f"https://down.example/hook/{i}", f"job-{i}")
        with pytest.raises(ApplicationError) as caught:
            await acts.notify(NotifyInput(f"job-{i}"))
        assert not caught.value.non_retryable
        delays.append(caught.value.next_retry_delay)
    assert delays == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=60)]
    # Open: the next delivery to that destination fails at once, without a request.
    final_job(store, account, "https://down.example/other", "job-x")
    with pytest.raises(ApplicationError) as caught:
        await acts.notify(NotifyInput("job-x"))
    assert caught.value.type == CIRCUIT_OPEN
    assert caught.value.next_retry_delay is not None
    assert caught.value.next_retry_delay > timedelta(seconds=50)
    assert len(recorder.requests) == 3
    # Other destinations are not affected.
    recorder.status = 204
    final_job(store, account, "https://up.example/hook", "job-y")
    assert (await acts.notify(NotifyInput("job-y"))).delivered


def test_the_breaker_closes_after_its_cooloff_and_a_success() -> None:
    now = {"t": 0.0}
    breaker = DestinationBreaker(threshold=2, cooloff_s=10, clock=lambda: now["t"])
    breaker.failed("d")
    assert breaker.open_for("d") == 0
    breaker.failed("d")
    assert breaker.open_for("d") == 10
    now["t"] = 11
    assert breaker.open_for("d") == 0  # one try may go
    breaker.succeeded("d")
    assert breaker.failed("d") == 1.0  # counting starts again


def test_a_destination_has_a_bounded_number_of_deliveries_in_flight() -> None:
    breaker = DestinationBreaker(max_in_flight=2)
    assert breaker.try_acquire("d") and breaker.try_acquire("d")
    assert not breaker.try_acquire("d")
    assert breaker.try_acquire("e")
    breaker.release("d")
    assert breaker.try_acquire("d")


# --- signing -------------------------------------------------------------------------


async def test_one_accounts_secret_does_not_verify_anothers_webhook(
    store: Store, settings: Settings
) -> None:
    alice = store.accounts.create_account("alice", "pro", "api")
    bob = store.accounts.create_account("bob", "pro", "api")
    recorder = Recorder()
    acts = activities(store, settings, recorder)
    final_job(store, alice, "https://alice.example/hook", "job-a")
    final_job(store, bob, "https://bob.example/hook", "job-b")
    await acts.notify(NotifyInput("job-a"))
    await acts.notify(NotifyInput("job-b"))
    alice_secret = store.accounts.webhook_secrets(alice.id)
    bob_secret = store.accounts.webhook_secrets(bob.id)
    assert alice_secret is not None and bob_secret is not None
    assert alice_secret.current.startswith("whsec_") and alice_secret != bob_secret
    to_alice, to_bob = recorder.requests
    header_a, header_b = to_alice.headers[SIGNATURE_HEADER], to_bob.headers[SIGNATURE_HEADER]
    assert verify(alice_secret.current, header_a, to_alice.content)
    assert verify(bob_secret.current, header_b, to_bob.content)
    assert not verify(bob_secret.current, header_a, to_alice.content)
    assert not verify(alice_secret.current, header_b, to_bob.content)


async def test_after_a_rotation_both_secrets_sign_for_the_grace_period(
    store: Store, settings: Settings
) -> None:
    account = store.accounts.create_account("a", "pro", "api")
    old = store.accounts.ensure_webhook_secret(account.id)
    new = store.accounts.rotate_webhook_secret(account.id)
    assert old is not None and new is not None
    assert new.previous == old.current and new.current != old.current
    recorder = Recorder()
    final_job(store, account, "https://hooks.example/hook")
    await activities(store, settings, recorder).notify(NotifyInput("job-1"))
    (request,) = recorder.requests
    header = request.headers[SIGNATURE_HEADER]
    assert header.count("v1=") == 2
    assert verify(new.current, header, request.content)
    assert verify(old.current, header, request.content)
    assert not verify("whsec_other", header, request.content)


def test_which_secrets_sign() -> None:
    now = utcnow()
    day = timedelta(days=1)
    fresh = WebhookSecrets("new", "old", now - timedelta(hours=1))
    stale = WebhookSecrets("new", "old", now - timedelta(days=2))
    first = WebhookSecrets("mine", None, now - timedelta(hours=1))
    # An account without its own: the server's (older deployments), or none at all.
    assert signing_secrets(None, "server", now, day) == ["server"]
    assert signing_secrets(None, None, now, day) == []
    assert signing_secrets(fresh, "server", now, day) == ["new", "old"]
    assert signing_secrets(stale, "server", now, day) == ["new"]
    # The account's first own secret: the server's signs beside it while receivers move.
    assert signing_secrets(first, "server", now, day) == ["mine", "server"]
    assert signing_secrets(first, "server", now + 2 * day, day) == ["mine"]


async def test_the_servers_secret_signs_only_for_accounts_without_their_own(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, webhook_secret="server-secret", webhook_secret_grace_s=0)
    store = open_store(settings)
    try:
        legacy = store.accounts.create_account("legacy", "pro", "api")
        own = store.accounts.create_account("own", "pro", "api")
        own_secret = store.accounts.ensure_webhook_secret(own.id)
        recorder = Recorder()
        acts = activities(store, settings, recorder)
        final_job(store, legacy, "https://legacy.example/hook", "job-l")
        final_job(store, own, "https://own.example/hook", "job-o")
        await acts.notify(NotifyInput("job-l"))
        await acts.notify(NotifyInput("job-o"))
        assert store.accounts.webhook_secrets(legacy.id) is None  # not made behind its back
    finally:
        store.close()
    to_legacy, to_own = recorder.requests
    assert verify("server-secret", to_legacy.headers[SIGNATURE_HEADER], to_legacy.content)
    assert own_secret is not None
    assert verify(own_secret.current, to_own.headers[SIGNATURE_HEADER], to_own.content)
    assert not verify("server-secret", to_own.headers[SIGNATURE_HEADER], to_own.content)


def test_verify_refuses_old_and_malformed_signatures() -> None:
    body = b"{}"
    assert not verify("s", "t=1,v1=" + "0" * 64, body)  # 1970
    assert not verify("s", "v1=abc", body)
    assert not verify("s", "t=x,v1=abc", body)
    assert not verify("s", "", body)


# --- logs ----------------------------------------------------------------------------


async def test_logs_never_carry_the_urls_secrets(
    store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    account = store.accounts.create_account("a", "pro", "api")
    url = "https://hookuser:hunter2pass@hooks.example/in/PATHTOKEN?token=SECRETTOKEN"
    final_job(store, account, url)
    install_log_redaction()
    try:
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(ApplicationError) as caught:
                await activities(store, settings, Recorder(500)).notify(NotifyInput("job-1"))
            logging.getLogger("t").warning("failed", exc_info=caught.value)
    finally:
        uninstall_log_redaction()
    text = caplog.text + str(caught.value)
    assert "https://hooks.example/" in text
    for secret in ("hookuser", "hunter2pass", "PATHTOKEN", "SECRETTOKEN"):
        assert secret not in text, secret


def test_ipv4_mapped_answers_connect_over_ipv4() -> None:
    request = webhooks.PinnedRequest.build(
        "http://h.example/x",
        ipaddress.ip_address("::ffff:8.8.8.8").ipv4_mapped,  # type: ignore[arg-type]
    )
    assert request.url.host == "8.8.8.8" and request.host == "h.example"
