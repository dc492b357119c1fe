"""OpenAI's Files API, as much of it as image edits need: upload, list, get, download and
delete an account's own files. A file here is an image (PNG, JPEG or WebP, checked as an
edit's upload is) that an edit can name by ``file_id`` instead of sending it again.

Every call is scoped to the caller's account: another account's file is a 404, the same
answer as a file that never existed. The bytes live in the blob store
(blob_layout.file_key); deleting a file deletes them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from daguerre.blob_layout import file_key
from daguerre.gateway.access import gates
from daguerre.gateway.api.deps import AccountDep, ServicesDep
from daguerre.gateway.api.errors import bad_request, not_found
from daguerre.gateway.context import Services
from daguerre.gateway.services import uploads
from daguerre.store.files import StoredFile, new_file_id

router = APIRouter(prefix="/v1/files", tags=["files"])

# OpenAI's purposes for a file a model looks at; the others (batch, fine-tune, ...) have
# nothing to do here.
PURPOSES = ("vision", "user_data")


class FilePublic(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    expires_at: int | None = None

    @classmethod
    def of(cls, stored: StoredFile) -> FilePublic:
        return cls(
            id=stored.id,
            bytes=stored.bytes,
            created_at=int(stored.created_at),
            filename=stored.filename,
            purpose=stored.purpose,
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FilePublic]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


@router.post("", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def upload_file(account: AccountDep, services: ServicesDep, request: Request) -> FilePublic:
    """Multipart ``file`` and ``purpose`` (vision or user_data); the file an image."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request(
            "POST /v1/files takes multipart/form-data with 'file' and 'purpose'.",
            code="invalid_content_type",
        )
    async with request.form(max_files=2, max_fields=8) as form:
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise bad_request(
                "Missing required parameter: 'file' (a file upload).",
                param="file",
                code="missing_required_parameter",
            )
        data, filename = await upload.read(), upload.filename or "upload"
    if purpose not in PURPOSES:
        raise bad_request(
            f"Invalid value for 'purpose': {purpose!r}; files here are images for edits, "
            f"so use one of: {', '.join(PURPOSES)}.",
            param="purpose",
        )
    settings = services.settings
    checked = await services.store.run(uploads.decode, data, "file", settings.max_upload_pixels)
    checked.image.close()
    file_id = new_file_id()
    media_type = f"image/{checked.format.lower()}"
    store = services.store
    # The bytes first, then the row: a listed file can always be read.
    await store.run(store.blobs.put, file_key(account.id, file_id), data)
    stored = await store.run(
        store.files.add, account.id, file_id, filename[:255], str(purpose), media_type, len(data)
    )
    return FilePublic.of(stored)


@router.get("", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def list_files(
    account: AccountDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Files per page.")] = 20,
    after: Annotated[
        str | None, Query(max_length=40, description="The last file id of the page before.")
    ] = None,
) -> FileList:
    """The caller's files, newest first."""
    page = await services.store.run(services.store.files.list_for, account.id, limit, after)
    if page is None:
        raise bad_request(f"No file found with id '{after}' to list after.", param="after")
    data = [FilePublic.of(f) for f in page.files]
    first, last = (data[0].id, data[-1].id) if data else (None, None)
    return FileList(data=data, first_id=first, last_id=last, has_more=page.has_more)


@router.get("/{file_id}", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def get_file(account: AccountDep, services: ServicesDep, file_id: str) -> FilePublic:
    return FilePublic.of(await _own(services, account.id, file_id))


@router.get(
    "/{file_id}/content", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES
)
async def file_content(account: AccountDep, services: ServicesDep, file_id: str) -> Response:
    stored = await _own(services, account.id, file_id)
    data = await read_file(services, stored)
    return Response(data, media_type=stored.media_type)


@router.delete("/{file_id}", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def delete_file(account: AccountDep, services: ServicesDep, file_id: str) -> FileDeleted:
    store = services.store
    gone = await store.run(store.files.delete, account.id, file_id)
    if gone is None:
        raise _missing(file_id)
    await store.run(store.blobs.delete, gone.blob_key)
    return FileDeleted(id=file_id)


async def _own(services: Services, account_id: str, file_id: str) -> StoredFile:
    stored = await services.store.run(services.store.files.get, account_id, file_id)
    if stored is None:
        raise _missing(file_id)
    return stored


async def read_file(services: Services, stored: StoredFile) -> bytes:
    try:
        return await services.store.run(services.store.blobs.get, stored.blob_key)
    except KeyError:
        raise _missing(stored.id) from None


def _missing(file_id: str) -> Exception:
    return not_found(f"No file found with id '{file_id}'.")
