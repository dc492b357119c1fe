"""GET /v1/models: what the gateway accepts, from the configured catalog."""

from __future__ import annotations

from fastapi import APIRouter

from daguerre.gateway.api.deps import AccountDep, ServicesDep
from daguerre.gateway.api.schemas import ModelList, ModelPublic

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
async def list_models(account: AccountDep, services: ServicesDep) -> ModelList:
    """The catalog's models, then the aliases (OpenAI's names, by default), each with the
    model it stands for."""
    settings = services.settings
    catalog = settings.models
    data = [ModelPublic(id=name, sizes=entry.size_names()) for name, entry in catalog.items()]
    for alias, target in settings.model_aliases.items():
        model = target or settings.model
        if alias not in catalog and model in catalog:
            sizes = catalog[model].size_names()
            data.append(ModelPublic(id=alias, sizes=sizes, alias_of=model))
    return ModelList(data=data)
