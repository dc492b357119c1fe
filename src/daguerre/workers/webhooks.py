"""The notify activity: POST a final job to its webhook, signed with HMAC-SHA256.

The receiver checks ``Daguerre-Signature: t=<unix time>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 with the shared secret (``DAGUERRE_WEBHOOK_SECRET``) over
``"<t>." + body``; the time lets it refuse replays. Delivery is at least once (the
activity retries on any failure or non-2xx answer), so receivers key on the job id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import anyio
import httpx
from temporalio import activity

from daguerre.config import Settings
from daguerre.engine.contracts import NOTIFY_ACTIVITY, NotifyInput, NotifyOutput
from daguerre.store import Store

SIGNATURE_HEADER = "Daguerre-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300) -> bool:
    """What a receiver does (written here for tests and as the reference)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


class WebhookActivities:
    def __init__(
        self, store: Store, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._store = store
        self._settings = settings
        self._transport = transport

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def notify(self, inp: NotifyInput) -> NotifyOutput:
        job = await anyio.to_thread.run_sync(self._store.jobs.get, inp.job_id)
        secret = self._settings.webhook_secret
        if job is None or not job.webhook_url or secret is None:
            return NotifyOutput(delivered=False)
        payload = {
            "type": f"job.{job.status.value}",
            "job": {
                "id": job.id,
                "status": job.status.value,
                "error": job.error,
                "error_code": job.error_code,
                "finished_at": job.finished_at,
                "image_ids": [image.id for image in job.images],
            },
        }
        body = json.dumps(payload).encode()
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(secret.get_secret_value(), int(time.time()), body),
        }
        async with httpx.AsyncClient(transport=self._transport, timeout=10) as http:
            response = await http.post(job.webhook_url, content=body, headers=headers)
        response.raise_for_status()  # a retry, with Temporal's backoff
        return NotifyOutput(delivered=True)
