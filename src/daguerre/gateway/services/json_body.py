"""POST /v1/images/edits as JSON: ``images`` (and ``mask``) as data URLs.

OpenAI's JSON form of an edit names its images by reference: ``{"image_url": ...}`` or
``{"file_id": ...}``. Daguerre takes data URLs (``data:image/png;base64,...``), whose
bytes then pass the same checks as an uploaded file (uploads.py: the real type, the
pixel count), or ids of the caller's own files (``/v1/files``). It fetches no remote
URL: a gateway that downloads what a client names can be made to reach inside the
network it runs in.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from daguerre.gateway.api.errors import bad_request
from daguerre.gateway.api.schemas import ImageEditCreate, ImageEditJSON, ImageReference

# A file of the caller's account by id: its bytes, or None when there is no such file.
FetchFile = Callable[[str], Awaitable[bytes | None]]

_DATA_URL = re.compile(
    r"data:(?P<type>[\w.+/-]*)(?P<params>(;[\w.+-]+=[^;,]*)*);base64,(?P<data>.*)", re.S
)


async def read(request: Request) -> dict[str, Any]:
    try:
        document = await request.json()
    except (ValueError, RecursionError):  # malformed, or nested past the parser's depth
        raise bad_request("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(document, dict):
        raise bad_request("The body must be a JSON object.", code="invalid_json")
    return document


async def parse(
    document: dict[str, Any], limit: int, fetch: FetchFile
) -> tuple[ImageEditCreate, list[bytes], bytes | None]:
    """The edit's fields, its images' bytes and its mask's, or a 400 naming the field."""
    try:
        body = ImageEditJSON.model_validate(document)
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None
    if len(body.images) > limit:
        raise bad_request(
            f"Invalid value for 'images': {len(body.images)} images; at most {limit} are allowed.",
            param="images",
            code="too_many_images",
        )
    images = [await image_bytes(ref, "images", fetch) for ref in body.images]
    mask = await image_bytes(body.mask, "mask", fetch) if body.mask is not None else None
    params = ImageEditCreate.model_validate(body.model_dump(exclude={"images", "mask"}))
    return params, images, mask


async def image_bytes(ref: ImageReference, param: str, fetch: FetchFile) -> bytes:
    if (ref.file_id is None) == (ref.image_url is None):
        raise bad_request(
            f"Invalid value for '{param}': give each image either an image_url (a data URL) "
            "or a file_id.",
            param=param,
        )
    if ref.file_id is not None:
        data = await fetch(ref.file_id)
        if data is None:  # another account's file reads as missing too
            raise bad_request(
                f"Invalid value for '{param}': no file found with id '{ref.file_id}'.",
                param=param,
                code="file_not_found",
            )
        return data
    assert ref.image_url is not None
    match = _DATA_URL.fullmatch(ref.image_url)
    if match is None:
        raise bad_request(
            f"Invalid value for '{param}': image_url must be a data URL such as "
            "data:image/png;base64,...; Daguerre does not download images from URLs.",
            param=param,
            code="invalid_image_url",
        )
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(
            f"Invalid value for '{param}': the data URL's base64 does not decode.",
            param=param,
            code="invalid_image_url",
        ) from None
