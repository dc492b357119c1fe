"""Conversations: a chat's lineage of images. Each turn is a job (202, asynchronous,
followed like any job at its ``events_url``) that draws anew or edits an earlier image."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from daguerre.gateway.access import gates
from daguerre.gateway.api.deps import AccountDep, ServicesDep
from daguerre.gateway.api.schemas import (
    ConversationCreate,
    ConversationList,
    ConversationPublic,
    ConversationUpdate,
    TurnCreate,
    TurnPublic,
)
from daguerre.gateway.services import conversations
from daguerre.store.threads import run_blocking

# Every conversation request counts against the account's read limit (its writes too:
# creating and renaming start no job, so no other limit counts them).
router = APIRouter(
    prefix="/v1/conversations",
    tags=["conversations"],
    dependencies=[gates.ReadLimit],
    responses=gates.READ_LIMIT_RESPONSES,
)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_conversation(
    account: AccountDep, services: ServicesDep, body: ConversationCreate | None = None
) -> ConversationPublic:
    title = body.title if body is not None else None
    conv = await run_blocking(services.store.conversations.create, account.id, title)
    return conversations.describe_conversation(conv)


@router.get("")
async def list_conversations(account: AccountDep, services: ServicesDep) -> ConversationList:
    found = await run_blocking(services.store.conversations.list_for, account.id)
    return ConversationList(data=[conversations.describe_conversation(c) for c in found])


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: str, account: AccountDep, services: ServicesDep, request: Request
) -> ConversationPublic:
    conv = await conversations.owned(services, account, conversation_id)
    return await conversations.describe_with_turns(services, conv, str(request.base_url))


@router.patch("/{conversation_id}")
async def rename_conversation(
    conversation_id: str, body: ConversationUpdate, account: AccountDep, services: ServicesDep
) -> ConversationPublic:
    await conversations.owned(services, account, conversation_id)
    store = services.store.conversations
    await run_blocking(store.rename, account.id, conversation_id, body.title)
    return conversations.describe_conversation(
        await conversations.owned(services, account, conversation_id)
    )


@router.post("/{conversation_id}/turns", status_code=status.HTTP_202_ACCEPTED)
async def create_turn(
    conversation_id: str,
    body: TurnCreate,
    account: AccountDep,
    services: ServicesDep,
    request: Request,
) -> TurnPublic:
    conv = await conversations.owned(services, account, conversation_id)
    turn, job = await conversations.add_turn(services, account, conv, body)
    turns = await run_blocking(services.store.conversations.turns, conv.id)
    by_id = {t.id: t for t in turns}
    return await conversations.describe_turn(services, turn, job, by_id, str(request.base_url))
