"""An account's webhook signing secrets: what the store hands out (see AccountStore's
webhook-secret methods, and workers/webhooks.py for how they sign).

Each account signs with its own secret, so a customer who verifies its webhooks learns
nothing that forges another's. A rotation keeps the previous secret, which signs beside
the new one for a grace period (``webhook_secret_grace_s``) while receivers move over.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

WEBHOOK_SECRET_PREFIX = "whsec_"


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class WebhookSecrets:
    current: str
    # The one ``current`` replaced, if any; it signs too until ``rotated_at`` + grace.
    previous: str | None
    # When ``current`` was made (by the first need of one, or a rotation).
    rotated_at: datetime | None

    def in_grace(self, now: datetime, grace: timedelta) -> bool:
        """Whether ``current`` is new enough that the secret before it still signs."""
        return self.rotated_at is not None and now < self.rotated_at + grace

    def previous_until(self, grace: timedelta) -> datetime | None:
        """When the previous secret stops signing; None: there is none."""
        if self.previous is None or self.rotated_at is None:
            return None
        return self.rotated_at + grace
