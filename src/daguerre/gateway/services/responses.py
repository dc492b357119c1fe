"""OpenAI's Responses API with the image_generation tool, mapped onto conversations.

A response is a conversation turn (``resp_<x>`` is turn ``turn_<x>``): a first response
starts a conversation, and ``previous_response_id`` adds a turn to that response's
conversation that edits its image (``action`` auto or edit) with the model's stored
encoding of it, or draws anew (``generate``). So the chat page and
``/v1/conversations`` show the same threads, and the account scoping, rate limits,
tiers, admission, rollout and moderation of the Images API apply unchanged (the turn's
job goes through jobs.submit).

Input is text (a string, or messages whose ``input_text`` parts are joined), plus
optionally a picture of the caller's own (``input_image``; the tool's
``input_image_mask``) or an earlier ``image_generation_call`` to branch from
(response_inputs.py).
"""

from __future__ import annotations

import base64
from typing import Any

from daguerre.domain import (
    Account,
    ConversationRecord,
    JobRecord,
    JobStatus,
    TurnRecord,
)
from daguerre.gateway.api import image_stream
from daguerre.gateway.api.errors import bad_request, not_found
from daguerre.gateway.api.responses_schemas import ImageGenerationTool, ResponseCreate, checked
from daguerre.gateway.api.schemas import TurnCreate
from daguerre.gateway.context import Services
from daguerre.gateway.services import conversations, image_blobs, response_inputs
from daguerre.store.threads import run_blocking

# A response's status, and its image_generation_call's, by its job's (a job not listed
# is still waiting: queued, and in_progress).
_STATUS = {
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.RUNNING: "in_progress",
}
_CALL_STATUS = {
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "failed",
    JobStatus.RUNNING: "generating",
}


def response_id(turn: TurnRecord) -> str:
    return "resp_" + turn.id.removeprefix("turn_")


def tool_of(body: ResponseCreate) -> ImageGenerationTool:
    for tool in body.tools:
        if tool.get("type") == "image_generation":
            return checked(ImageGenerationTool, tool)
    raise bad_request(
        "Invalid value for 'tools': Daguerre answers with images only; add "
        '{"type": "image_generation"} to tools.',
        param="tools",
    )


async def create(
    services: Services, account: Account, body: ResponseCreate, tool: ImageGenerationTool
) -> tuple[TurnRecord, JobRecord]:
    """The response's turn and its submitted job."""
    prompt = body.prompt()
    if not prompt.strip():
        raise bad_request("Invalid value for 'input': there is no text to draw.", param="input")
    uploads = bool(response_inputs.images_of(body))
    previous = await _parent(services, account, body, tool, uploads)
    if previous is not None:
        conv = await conversations.owned(services, account, previous.conversation_id)
        return await _turn(services, account, conv, previous, body, tool, prompt, uploads)
    # A new thread, forgotten again if its first turn is refused (a rate limit,
    # moderation): the caller never saw it.
    store = services.store.conversations
    conv = await run_blocking(store.create, account.id, prompt[:200])
    try:
        return await _turn(services, account, conv, None, body, tool, prompt, uploads)
    except BaseException:
        await run_blocking(store.discard, conv.id)
        raise


async def _turn(
    services: Services,
    account: Account,
    conv: ConversationRecord,
    previous: TurnRecord | None,
    body: ResponseCreate,
    tool: ImageGenerationTool,
    prompt: str,
    uploads: bool,
) -> tuple[TurnRecord, JobRecord]:
    if uploads:  # a picture of the caller's own, read and stored as an edit's upload
        return await response_inputs.edit_upload(services, account, conv.id, body, tool, prompt)
    mode = "new" if previous is None or tool.action == "generate" else "edit"
    turn_body = TurnCreate(
        prompt=prompt,
        mode=mode,
        from_turn=previous.index if mode == "edit" and previous is not None else None,
        model=tool.model,
        size=tool.size,
        output_format=tool.output_format,
    )
    options = tool.model_dump(
        include={"quality", "background", "output_compression", "moderation"}, exclude_none=True
    )
    options["partial_images"] = (tool.partial_images or 0) if body.stream else 0
    # A caller waiting on the connection is refused rather than deferred; a background
    # response may wait for capacity like any other queued job.
    return await conversations.add_turn(
        services, account, conv, turn_body, options, can_defer=body.background
    )


async def _parent(
    services: Services,
    account: Account,
    body: ResponseCreate,
    tool: ImageGenerationTool,
    uploads: bool,
) -> TurnRecord | None:
    """The turn the response follows: a call named in the input (branching), else
    ``previous_response_id``'s, else none (a new thread)."""
    if tool.input_image_mask is not None and not uploads:
        raise bad_request(
            "Invalid value for 'tools': input_image_mask masks an input_image; send the "
            "picture as an input_image part too.",
            param="tools",
        )
    calls = response_inputs.call_ids_of(body)
    if calls:
        return await response_inputs.branch_turn(services, account, calls[-1])
    previous = await previous_turn(services, account, body.previous_response_id)
    if tool.action == "edit" and previous is None and not uploads:
        raise bad_request(
            "Invalid value for 'tools': action 'edit' needs previous_response_id (the "
            "response whose image to edit) or an input_image.",
            param="tools",
        )
    return previous


async def previous_turn(
    services: Services, account: Account, response: str | None
) -> TurnRecord | None:
    if response is None:
        return None
    return await owned_turn(services, account, response, param="previous_response_id")


async def owned_turn(
    services: Services, account: Account, response: str, param: str | None = None
) -> TurnRecord:
    """The turn behind ``response`` if it is the account's; else the same answer as for
    a response that never existed (400 for a parameter, 404 for a path)."""
    turn_id = "turn_" + response.removeprefix("resp_")
    turn = None
    if response.startswith("resp_"):
        turn = await run_blocking(services.store.conversations.find_turn, account.id, turn_id)
    if turn is None:
        message = f"No response found with id '{response}'."
        raise bad_request(message, param=param) if param else not_found(message)
    return turn


async def describe(
    services: Services, turn: TurnRecord, job: JobRecord, background: bool = False
) -> dict[str, Any]:
    """The Response object: its image_generation_call (with the image once done) and,
    when done, a short assistant message."""
    status = _STATUS.get(job.status, "queued")
    item = await call_item(services, job)
    output: list[dict[str, Any]] = [item]
    if status == "completed":
        text = item.get("revised_prompt") or "Here is the image."
        output.append(
            {
                "type": "message",
                "id": "msg_" + turn.id.removeprefix("turn_"),
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    parent = "resp_" + turn.parent_turn_id.removeprefix("turn_") if turn.parent_turn_id else None
    error = None
    if job.status is JobStatus.FAILED:
        error = {"code": job.error_code or "server_error", "message": job.error or "failed"}
    return {
        "id": response_id(turn),
        "object": "response",
        "created_at": int(turn.created_at),
        "status": status,
        "background": background,
        "model": job.spec.model,
        "output": output,
        "previous_response_id": parent,
        "conversation": {"id": turn.conversation_id},
        "error": error,
        "tools": [{"type": "image_generation"}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "usage": None,
    }


async def call_item(services: Services, job: JobRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "image_generation_call",
        "id": "ig_" + job.public_id,
        "status": _CALL_STATUS.get(job.status, "in_progress"),
        "result": None,
        "action": "edit" if job.spec.is_edit else "generate",
        **image_stream.render_fields(job.spec),
    }
    if job.status is JobStatus.SUCCEEDED and job.images:
        image = job.images[0]
        data = await image_blobs.read_image(services, image, job)
        item["result"] = base64.b64encode(data).decode()
        item["revised_prompt"] = image.revised_prompt
    return item
