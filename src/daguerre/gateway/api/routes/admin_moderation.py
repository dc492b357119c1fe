"""The moderation audit (``GET /admin/moderation``): the prompts moderation refused,
newest first, for every account or one (gateway/access/moderation.py records them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.store.threads import run_blocking

router = APIRouter(prefix="/moderation")


class RefusalPublic(BaseModel):
    id: str
    account_id: str
    policy: str
    reason: str
    prompt: str
    created_at: int


@router.get("")
async def list_refusals(
    _: AdminDep,
    services: ServicesDep,
    account: Annotated[str | None, Query(max_length=64, description="One account's.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RefusalPublic]:
    refusals = await run_blocking(services.store.moderation.list, account, limit)
    return [
        RefusalPublic(
            id=r.id,
            account_id=r.account_id,
            policy=r.policy,
            reason=r.reason,
            prompt=r.prompt,
            created_at=int(r.created_at),
        )
        for r in refusals
    ]
