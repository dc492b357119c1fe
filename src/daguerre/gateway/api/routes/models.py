"""GET /v1/models: what the gateway accepts, from the configured catalog."""

from __future__ import annotations

from fastapi import APIRouter

from daguerre.gateway.api.deps import AccountDep, ServicesDep
from daguerre.gateway.api.schemas import ModelList, ModelPublic

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
async def list_models(account: AccountDep, services: ServicesDep) -> ModelList:
    catalog = services.settings.models
    return ModelList(
        data=[ModelPublic(id=name, sizes=entry.size_names()) for name, entry in catalog.items()]
    )
