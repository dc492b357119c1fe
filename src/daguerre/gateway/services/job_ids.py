"""Job ids: the row's id, which is also its workflow's.

Minted in one place so that every way in (the job API, OpenAI's images API, edits and
conversation turns) makes ids of one shape, and so that a derived id can never meet
another account's job.
"""

from __future__ import annotations

import hashlib
import secrets

from daguerre.domain import Account


def fresh_job_id() -> str:
    """An id nobody has used: for a request that names no id of its own."""
    return f"job_{secrets.token_hex(12)}"


def new_job_id(account: Account, client_id: str | None, idempotency_key: str | None) -> str:
    """The row's id (and its workflow's): derived from the account and the client's own
    id or its Idempotency-Key, else a fresh one. Derived, so that ids never meet across
    accounts: two accounts may pick the same id, and neither learns that the other did.
    The client keeps seeing its own id (JobRecord.public_id)."""
    if client_id:
        # Tagged, so that a client id never derives the row of an equal Idempotency-Key.
        digest = hashlib.sha256(f"client-id\n{account.id}\n{client_id}".encode()).hexdigest()
        return f"job_{digest[:32]}"
    if idempotency_key:
        digest = hashlib.sha256(f"{account.id}\n{idempotency_key}".encode()).hexdigest()
        return f"job_{digest[:32]}"
    return fresh_job_id()
