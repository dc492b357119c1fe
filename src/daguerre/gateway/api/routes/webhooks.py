"""The account's webhook signing secret: read it (made on first need) and rotate it.

Every webhook of an account is signed with this secret (workers/webhooks.py), so a
customer verifies its webhooks with a secret no other customer has. After a rotation
the previous secret keeps signing beside the new one (a second ``v1`` in
``Daguerre-Signature``) until ``previous_secret_expires_at``, so receivers can switch
over without missing a webhook.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from daguerre.domain import Account
from daguerre.gateway.api.deps import AccountDep, ServicesDep
from daguerre.gateway.api.errors import not_found
from daguerre.gateway.context import Services
from daguerre.store.threads import run_blocking
from daguerre.store.webhook_secrets import WebhookSecrets
from daguerre.webhook_event import WebhookEvent

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def document_events(app: FastAPI) -> None:
    """Publish what a job's webhook sends in /openapi.json's ``webhooks`` section."""

    @app.webhooks.post("job.final")
    def job_final(body: WebhookEvent) -> None:
        """POSTed to a job's ``webhook_url`` once the job succeeded, failed or was
        cancelled. Answer with any 2xx within 10 s; anything else is retried with backoff
        (redirects are not followed)."""


class WebhookSecretPublic(BaseModel):
    object: Literal["webhook.secret"] = "webhook.secret"
    secret: str = Field(description="Verifies Daguerre-Signature: HMAC-SHA256 of '<t>.<body>'.")
    created_at: int | None = Field(description="When this secret was made (Unix seconds).")
    previous_secret_expires_at: int | None = Field(
        description="Until when the secret this one replaced still signs too; null: none does."
    )


def _unix(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when is not None else None


def _public(secrets: WebhookSecrets, services: Services) -> WebhookSecretPublic:
    grace = timedelta(seconds=services.settings.webhook_secret_grace_s)
    return WebhookSecretPublic(
        secret=secrets.current,
        created_at=_unix(secrets.rotated_at),
        previous_secret_expires_at=_unix(secrets.previous_until(grace)),
    )


def _found(secrets: WebhookSecrets | None, account: Account) -> WebhookSecrets:
    if secrets is None:  # the account was deleted under a cached key
        raise not_found(f"No account {account.id}.")
    return secrets


@router.get("/secret")
async def get_webhook_secret(account: AccountDep, services: ServicesDep) -> WebhookSecretPublic:
    """The secret that signs this account's webhooks (made on the first request)."""
    secrets = await run_blocking(services.store.accounts.ensure_webhook_secret, account.id)
    return _public(_found(secrets, account), services)


@router.post("/secret/rotate")
async def rotate_webhook_secret(account: AccountDep, services: ServicesDep) -> WebhookSecretPublic:
    """A new secret. The old one keeps signing beside it for the grace period
    (``previous_secret_expires_at``): receivers switch over meanwhile. A receiver
    stops trusting a leaked secret by no longer accepting it; signing with it too does
    not weaken that."""
    secrets = await run_blocking(services.store.accounts.rotate_webhook_secret, account.id)
    return _public(_found(secrets, account), services)
