"""The notify activity: POST a final job to its webhook, signed with the account's secret,
and only to a destination on the public internet.

Signing: ``Daguerre-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]``, where each ``v1``
is HMAC-SHA256 over ``"<t>." + body`` with one of the account's signing secrets (its
current one, and for a grace period after a rotation the previous one too). A receiver
accepts the webhook if any ``v1`` matches its secret (``verify`` is the reference); the
time lets it refuse replays. Each account has its own secret (GET /v1/webhooks/secret),
so a customer who verifies its webhooks cannot forge another's. The server-wide
``webhook_secret`` of older deployments signs only for accounts that have none yet, and
beside an account's first own secret during the grace period.

Safety (see daguerre/webhook_guard.py): the host is resolved once, every address it
resolves to must be public (or allowed by the operator), and the request goes to the
address that was checked, with the original host in ``Host`` and in TLS's SNI and
certificate check; no redirects, no proxies from the environment, a 3 s connect and a
``webhook_timeout_s`` total limit, and at most 64 KiB of the answer read. A refused
destination fails the delivery for good; a failing one is retried with backoff per
destination and a circuit breaker (workers/webhook_breaker.py).

Delivery is at least once (any failure or non-2xx answer but a redirect is retried), so
receivers key on the job id. Nothing here logs or raises a URL with its credentials,
path or query string (paths may hold tokens too): only its scheme, host and port.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from daguerre.config import Settings
from daguerre.engine.contracts import NOTIFY_ACTIVITY, NotifyInput, NotifyOutput
from daguerre.redact import redact, redact_url
from daguerre.store import Store
from daguerre.store.tables import utcnow
from daguerre.store.threads import run_blocking
from daguerre.store.webhook_secrets import WebhookSecrets
from daguerre.webhook_event import WebhookEvent
from daguerre.webhook_guard import (
    AllowList,
    DestinationRefused,
    IPAddress,
    Resolver,
    Target,
    getaddrinfo_resolver,
    resolve_destination,
)
from daguerre.workers.webhook_breaker import DestinationBreaker

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Daguerre-Signature"
MAX_RESPONSE_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 3.0
# ApplicationError types of a failed delivery.
REFUSED = "WebhookRefused"  # the destination may not be called: never retried
REDIRECTED = "WebhookRedirected"  # a 3xx: webhooks do not follow redirects
FAILED = "WebhookFailed"  # no answer, or not a 2xx: retried
CIRCUIT_OPEN = "WebhookCircuitOpen"  # the destination is failing: retried after cool-off
BUSY = "WebhookBusy"  # the destination has its most deliveries in flight: retried


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=...,v1=...`` with one ``v1`` per secret."""
    return ",".join([f"t={timestamp}", *(f"v1={_mac(s, timestamp, body)}" for s in secrets)])


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header for one secret."""
    return signature_header([secret], timestamp, body)


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300) -> bool:
    """What a receiver does (written here for tests and as the reference): the time is
    recent, and any ``v1`` is the body's HMAC with ``secret``."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    # Every candidate is compared, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(expected, c) for c in candidates]
    return any(matches)


def signing_secrets(
    own: WebhookSecrets | None, server: str | None, now: datetime, grace: timedelta
) -> list[str]:
    """The secrets that sign an account's webhook now, its own first."""
    if own is None:
        return [server] if server else []
    chosen = [own.current]
    if own.in_grace(now, grace):
        if own.previous is not None:
            chosen.append(own.previous)
        elif server:
            # The account's first own secret: receivers that verify with the server's
            # secret keep working while they move over.
            chosen.append(server)
    return chosen


class WebhookActivities:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = getaddrinfo_resolver,
        breaker: DestinationBreaker | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._transport = transport
        self._resolver = resolver
        self._allow = AllowList.parse(settings.webhook_allow)
        self.breaker = breaker or DestinationBreaker(
            threshold=settings.webhook_breaker_failures,
            cooloff_s=settings.webhook_cooloff_s,
            max_in_flight=settings.webhook_max_per_destination,
            backoff_max_s=60.0,
        )

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def notify(self, inp: NotifyInput) -> NotifyOutput:
        job = await run_blocking(self._store.jobs.get, inp.job_id)
        if job is None or not job.webhook_url:
            return NotifyOutput(delivered=False)
        url = job.webhook_url
        shown = redact_url(url, path=False)
        try:
            target, address = await resolve_destination(url, self._allow, self._resolver)
            request = PinnedRequest.build(url, address)
        except DestinationRefused as err:
            log.warning("not calling the webhook of job %s (%s): %s", job.id, shown, err)
            raise ApplicationError(
                f"webhook {shown} refused: {err}", type=REFUSED, non_retryable=True
            ) from None
        secrets = await run_blocking(self._secrets_for, job.account_id)
        body = WebhookEvent.of(job).model_dump_json().encode()
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: signature_header(secrets, int(time.time()), body),
        }
        await self._deliver(job.id, url, target, request, body, headers)
        return NotifyOutput(delivered=True)

    def _secrets_for(self, account_id: str) -> list[str]:
        accounts = self._store.accounts
        server = self._settings.webhook_secret
        own = accounts.webhook_secrets(account_id)
        if own is None and server is None:
            own = accounts.ensure_webhook_secret(account_id)  # the first need of one
        grace = timedelta(seconds=self._settings.webhook_secret_grace_s)
        chosen = signing_secrets(
            own, server.get_secret_value() if server else None, utcnow(), grace
        )
        if not chosen:
            raise ApplicationError(
                f"account {account_id} is gone", type=REFUSED, non_retryable=True
            )
        return chosen

    async def _deliver(
        self,
        job_id: str,
        url: str,
        target: Target,
        request: PinnedRequest,
        body: bytes,
        headers: dict[str, str],
    ) -> None:
        shown = redact_url(url, path=False)
        key = target.key
        self._admit(key, shown)
        try:
            status = await self._post(request, body, headers)
        except (httpx.HTTPError, TimeoutError, OSError) as err:
            delay = self.breaker.failed(key)
            reason = redact(f"{type(err).__name__}: {err}".rstrip(": "))
            log.warning("the webhook of job %s (%s) failed: %s", job_id, shown, reason)
            raise ApplicationError(
                f"webhook {shown} failed: {reason}",
                type=FAILED,
                next_retry_delay=timedelta(seconds=delay),
            ) from None
        finally:
            self.breaker.release(key)
        self._judge(job_id, shown, key, status)

    def _admit(self, key: str, shown: str) -> None:
        """Take an in-flight slot of the destination, or say (as a retryable error) when to
        try again: after its circuit's cool-down, or after a backoff while it is busy."""
        wait = self.breaker.open_for(key)
        if wait > 0:
            raise ApplicationError(
                f"webhook {shown}: {key} failed {self.breaker.threshold} times in a row; "
                f"next try in {wait:.0f} s",
                type=CIRCUIT_OPEN,
                next_retry_delay=timedelta(seconds=wait),
            )
        if not self.breaker.try_acquire(key):
            attempt = activity.info().attempt if activity.in_activity() else 1
            raise ApplicationError(
                f"webhook {shown}: {key} has {self.breaker.max_in_flight} deliveries in flight",
                type=BUSY,
                next_retry_delay=timedelta(seconds=min(5 * 2 ** min(attempt - 1, 6), 60)),
            )

    def _judge(self, job_id: str, shown: str, key: str, status: int) -> None:
        """Return on a 2xx; otherwise raise, retryable unless a redirect, and count the
        answer for the destination's circuit (only an overloaded one counts as failing)."""
        if 200 <= status < 300:
            self.breaker.succeeded(key)
            return
        if 300 <= status < 400:
            self.breaker.succeeded(key)
            log.warning("the webhook of job %s (%s) answered a redirect", job_id, shown)
            raise ApplicationError(
                f"webhook {shown} answered {status}: webhooks do not follow redirects",
                type=REDIRECTED,
                non_retryable=True,
            )
        overloaded = status >= 500 or status == 429
        retry_in = self.breaker.failed(key) if overloaded else None
        if not overloaded:
            self.breaker.succeeded(key)  # it answered: the destination is up
        log.warning("the webhook of job %s (%s) answered %d", job_id, shown, status)
        raise ApplicationError(
            f"webhook {shown} answered {status}",
            type=FAILED,
            next_retry_delay=timedelta(seconds=retry_in) if retry_in is not None else None,
        )

    async def _post(self, request: PinnedRequest, body: bytes, headers: dict[str, str]) -> int:
        """POST to the checked address as if to the URL's host; the answer's status."""
        total = self._settings.webhook_timeout_s
        timeout = httpx.Timeout(total, connect=min(CONNECT_TIMEOUT_S, total))
        with anyio.fail_after(total):
            async with (
                httpx.AsyncClient(
                    transport=self._transport,
                    timeout=timeout,
                    follow_redirects=False,
                    trust_env=False,  # no proxy from the environment: we pinned the address
                ) as http,
                http.stream(
                    "POST",
                    request.url,
                    content=body,
                    headers={**headers, "host": request.host},
                    extensions=request.extensions,
                ) as response,
            ):
                # The answer does not matter beyond its status: read a little of it (raw,
                # never decompressed), then hang up.
                read = 0
                if not response.is_stream_consumed:
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                return response.status_code


@dataclass(frozen=True)
class PinnedRequest:
    """A webhook URL with its host replaced by the address that was checked: the host
    goes in ``Host`` and, for https, in TLS's SNI (``sni_hostname``), which is also the
    name the certificate is checked against. Credentials in the URL become Basic auth."""

    url: httpx.URL
    host: str
    extensions: dict[str, str]

    @classmethod
    def build(cls, url: str, address: IPAddress) -> PinnedRequest:
        try:
            original = httpx.URL(url)
            pinned = original.copy_with(host=str(address))
            host = original.netloc.decode("ascii")
            sni = original.raw_host.decode("ascii")
        except (httpx.InvalidURL, UnicodeError, ValueError) as err:
            raise DestinationRefused(f"it is not a valid URL ({type(err).__name__})") from None
        extensions = {"sni_hostname": sni} if original.scheme == "https" else {}
        return cls(pinned, host, extensions)
