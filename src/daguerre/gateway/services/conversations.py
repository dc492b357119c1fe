"""What the conversation routes do: resolve a turn's mode and source image, submit its
job, and describe conversations. A turn is a job plus its place in the lineage.

An edit turn takes the image of its parent turn as the source and, when Daguerre made
that image, the model's own encoding of it (stored next to the image by the worker),
so the worker skips encoding the pixels again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from daguerre.domain import (
    Account,
    ConversationRecord,
    JobRecord,
    JobSpec,
    JobStatus,
    TurnRecord,
)
from daguerre.gateway.api.errors import APIError, bad_request, not_found
from daguerre.gateway.api.schemas import (
    ConversationPublic,
    RenderParams,
    TurnCreate,
    TurnImage,
    TurnPublic,
)
from daguerre.gateway.context import Services
from daguerre.gateway.services import job_ids, jobs
from daguerre.store.threads import run_blocking


async def owned(services: Services, account: Account, conversation_id: str) -> ConversationRecord:
    """The conversation if it is ``account``'s; otherwise the same 404 as a missing one."""
    found = await run_blocking(services.store.conversations.get, account.id, conversation_id)
    if found is None:
        raise not_found(f"No conversation found with id '{conversation_id}'.")
    return found


async def _job(services: Services, job_id: str) -> JobRecord | None:
    return await run_blocking(services.store.jobs.get, job_id)


def _parent(turns: list[TurnRecord], body: TurnCreate) -> TurnRecord | None:
    """The turn whose image an edit starts from: ``from_turn``, else the latest turn."""
    if body.from_turn is not None:
        for turn in turns:
            if turn.index == body.from_turn:
                return turn
        raise bad_request(
            f"Invalid value for 'from_turn': this conversation has no turn {body.from_turn} "
            f"(it has {len(turns)}).",
            param="from_turn",
        )
    return turns[-1] if turns else None


async def _edit_source(services: Services, parent: TurnRecord, required: bool) -> JobRecord | None:
    """The parent's finished job, or None when ``auto`` should draw anew instead."""
    job = await _job(services, parent.job_id)
    expired = job is not None and job.expired_at is not None
    if job is not None and job.status is JobStatus.SUCCEEDED and job.images and not expired:
        return job
    if job is not None and not job.is_terminal:
        raise APIError(
            409,
            f"Turn {parent.index} is still rendering; edit it once its image is ready.",
            param="from_turn",
            code="source_not_ready",
        )
    if required:
        outcome = f"its job {job.status.value}" if job is not None else "its job is gone"
        if expired:
            outcome = "its image was deleted at the end of the time your plan keeps images"
        raise APIError(
            409,
            f"Turn {parent.index} has no image to edit ({outcome}).",
            param="from_turn",
            code="source_unavailable",
        )
    return None


async def add_turn(
    services: Services,
    account: Account,
    conversation: ConversationRecord,
    body: TurnCreate,
    options: dict[str, Any] | None = None,
    can_defer: bool = True,
) -> tuple[TurnRecord, JobRecord]:
    """A turn and its submitted job. ``options``: more of the request's render fields
    (quality, background, ...; the Responses API's tool options) and ``partial_images``."""
    parent, source = await _turn_source(services, conversation, body)
    job_id = job_ids.fresh_job_id()
    options = dict(options or {})
    partial_images = int(options.pop("partial_images", 0) or 0)
    spec = _turn_spec(services, body, source, job_id, options)
    spec = dataclasses.replace(spec, partial_images=partial_images)
    mode = "edit" if source is not None else "new"
    parent_id = parent.id if source is not None and parent is not None else None
    # The turn first (its number is taken), then the job; a job that cannot start
    # takes its turn with it, as an unacknowledged job is forgotten.
    store = services.store
    turn = await run_blocking(
        store.conversations.add_turn, conversation.id, body.prompt, mode, parent_id, job_id
    )
    try:
        job = await jobs.submit(services, account, job_id, spec, can_defer=can_defer)
    except BaseException:
        await run_blocking(store.conversations.discard_turn, turn.id)
        raise
    return turn, job


async def _turn_source(
    services: Services, conversation: ConversationRecord, body: TurnCreate
) -> tuple[TurnRecord | None, JobRecord | None]:
    """The turn a new turn follows and, for an edit, the finished job whose image it
    starts from (None: the turn draws anew)."""
    if body.mode == "new" and body.from_turn is not None:
        raise bad_request(
            "Invalid value for 'from_turn': a 'new' turn draws from scratch; use mode "
            "'edit' (or 'auto') to start from an earlier image.",
            param="from_turn",
        )
    turns = await run_blocking(services.store.conversations.turns, conversation.id)
    parent = _parent(turns, body) if body.mode != "new" else None
    if body.mode == "edit" and parent is None:
        raise bad_request(
            "Invalid value for 'mode': there is no earlier image to edit in this conversation.",
            param="mode",
        )
    if parent is None:
        return None, None
    required = body.mode == "edit" or body.from_turn is not None
    return parent, await _edit_source(services, parent, required=required)


def _turn_spec(
    services: Services,
    body: TurnCreate,
    source: JobRecord | None,
    job_id: str,
    options: dict[str, Any],
) -> JobSpec:
    """The turn's job: an edit keeps its source's size (and model, unless named)."""
    size, model = body.size, body.model
    if source is not None:
        first = source.images[0]
        size, model = f"{first.width}x{first.height}", body.model or source.spec.model
    params = RenderParams(
        prompt=body.prompt, model=model, size=size, output_format=body.output_format, **options
    )
    spec = jobs.resolve_spec(services.settings, params, job_id)
    if source is not None:
        image = source.images[0]
        spec = dataclasses.replace(
            spec, source_key=image.blob_key, source_encoding_key=image.encoding_key
        )
    return spec


async def describe_turn(
    services: Services,
    turn: TurnRecord,
    job: JobRecord,
    by_id: dict[str, TurnRecord],
    base_url: str,
) -> TurnPublic:
    image = None
    if job.status is JobStatus.SUCCEEDED and job.images:
        first = job.images[0]
        image = TurnImage(
            id=first.id,
            url=jobs.image_url(services, base_url, first),
            width=first.width,
            height=first.height,
            revised_prompt=first.revised_prompt,
        )
    parent = by_id.get(turn.parent_turn_id) if turn.parent_turn_id else None
    return TurnPublic(
        id=turn.id,
        conversation_id=turn.conversation_id,
        index=turn.index,
        prompt=turn.prompt,
        mode="edit" if turn.mode == "edit" else "new",
        parent_turn=parent.index if parent is not None else None,
        parent_turn_id=turn.parent_turn_id,
        created_at=int(turn.created_at),
        image=image,
        job=await jobs.describe(services, job, base_url),
    )


def describe_conversation(conv: ConversationRecord) -> ConversationPublic:
    return ConversationPublic(
        id=conv.id,
        title=conv.title,
        created_at=int(conv.created_at),
        updated_at=int(conv.updated_at),
        turn_count=conv.turn_count,
    )


async def describe_with_turns(
    services: Services, conv: ConversationRecord, base_url: str
) -> ConversationPublic:
    turns = await run_blocking(services.store.conversations.turns, conv.id)
    by_id = {t.id: t for t in turns}
    public = []
    for turn in turns:
        job = await _job(services, turn.job_id)
        if job is None:
            continue  # a job that was never acknowledged
        public.append(await describe_turn(services, turn, job, by_id, base_url))
    out = describe_conversation(conv)
    out.turn_count = len(public)
    out.turns = public
    return out
