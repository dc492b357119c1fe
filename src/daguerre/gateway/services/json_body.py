"""POST /v1/images/edits as JSON: ``images`` (and ``mask``) as data URLs.

OpenAI's JSON form of an edit names its images by reference: ``{"image_url": ...}`` or
``{"file_id": ...}``. Daguerre takes data URLs (``data:image/png;base64,...``), whose
bytes then pass the same checks as an uploaded file (uploads.py: the real type, the
pixel count). It fetches no remote URL: a gateway that downloads what a client names
can be made to reach inside the network it runs in. ``file_id`` is refused with a 400
that says what to send instead, as there is no Files API yet.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from daguerre.gateway.api.errors import bad_request
from daguerre.gateway.api.schemas import ImageEditCreate, ImageEditJSON, ImageReference

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


def parse(
    document: dict[str, Any], limit: int
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
    images = [image_bytes(ref, "images") for ref in body.images]
    mask = image_bytes(body.mask, "mask") if body.mask is not None else None
    params = ImageEditCreate.model_validate(body.model_dump(exclude={"images", "mask"}))
    return params, images, mask


def image_bytes(ref: ImageReference, param: str) -> bytes:
    if ref.file_id is not None:
        raise bad_request(
            f"Invalid value for '{param}': file_id is not supported here yet; send the image "
            "as a data URL (image_url: data:image/png;base64,...) or upload it as a file "
            "(multipart).",
            param=param,
            code="unsupported_file_id",
        )
    if ref.image_url is None:
        raise bad_request(
            f"Invalid value for '{param}': give each image an image_url.",
            param=param,
            code="missing_required_parameter",
        )
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
