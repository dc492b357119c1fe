"""The operators' audit log: every change made through the admin API, by whom and when
(``GET /admin/audit``, newest first; the operator page shows it).

A mutating admin route takes an ``OperatorDep`` instead of a bare ``AdminDep``: the same
check of the admin key, plus ``record(change)``, which the route calls once its change
has been applied. The action is the route's method and path; the change is what the
operator sent (never a secret: the admin API takes none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.gateway.context import Services
from daguerre.store.threads import run_blocking

router = APIRouter(prefix="/audit")


@dataclass(frozen=True)
class Operator:
    """Who is operating, on which route: what an applied change is recorded as."""

    who: str
    action: str
    services: Services

    async def record(self, change: Any = None) -> None:
        await run_blocking(self.services.store.audit.record, self.who, self.action, change)


async def operator(who: AdminDep, services: ServicesDep, request: Request) -> Operator:
    return Operator(who, f"{request.method} {request.url.path}", services)


OperatorDep = Annotated[Operator, Depends(operator)]


class AuditEntryPublic(BaseModel):
    id: str
    actor: str = Field(
        description='"admin-key" (DAGUERRE_ADMIN_KEY) or the account id of the admin-scoped '
        "key that made the change."
    )
    action: str = Field(description='The route, e.g. "PATCH /admin/tiers/free".')
    change: Any = Field(description="The JSON the operator sent; null for a reset.")
    created_at: float = Field(description="Unix seconds.")


@router.get("")
async def list_audit(
    _: AdminDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AuditEntryPublic]:
    """The operators' latest changes, newest first."""
    entries = await run_blocking(services.store.audit.list, limit)
    return [
        AuditEntryPublic(
            id=e.id, actor=e.actor, action=e.action, change=e.change, created_at=e.created_at
        )
        for e in entries
    ]
