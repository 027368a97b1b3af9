"""Reading requests: JSON bodies, multipart uploads with a size cap, header checks."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel

from imbot.sim.responses import ApiError, unprocessable
from imbot.sim.validation import parse_body

__all__ = ["Upload", "idempotency_key", "read_json", "read_upload"]

ModelT = TypeVar("ModelT", bound=BaseModel)

# Past this, an oversized upload is not drained any further: the answer is sent and the
# connection is dropped. Up to it, draining lets the client finish writing and read the 413.
_DRAIN_LIMIT = 64 * 1024 * 1024
_CHUNK = 256 * 1024

Upload = tuple[str | None, str | None, bytes]


async def read_json(request: web.Request, model: type[ModelT]) -> ModelT:
    """Read and validate a JSON body (see ``validation.parse_body``)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413,
            {"error": "payload_too_large", "message": "the JSON body is too large"},
        ) from None
    return parse_body(raw, model)


async def read_upload(request: web.Request, limit: int) -> Upload:
    """Read the multipart ``file`` field: ``(filename, content_type, bytes)``.

    Raises:
        ApiError: 422 when there is no ``file`` part, 413 ``media_too_large`` past ``limit``.
    """
    missing = ApiError(422, [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}])
    if not request.content_type.startswith("multipart/"):
        raise missing
    try:
        return await _read_parts(request, limit, missing)
    except (HttpProcessingError, ValueError) as exc:
        # A malformed part header (a NUL byte in a file name, a bad boundary) is a bad
        # body from the client, not a server fault.
        raise ApiError(
            422,
            [
                {
                    "loc": ["body", "file"],
                    "msg": f"malformed multipart body: {_reason(exc)}",
                    "type": "value_error",
                }
            ],
        ) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, HttpProcessingError):
        # Its text repeats the raw header, control bytes and all.
        return type(exc).__name__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def _read_parts(request: web.Request, limit: int, missing: ApiError) -> Upload:
    reader = await request.multipart()
    upload: Upload | None = None
    too_large = False
    drained = 0
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        if part.name != "file" or upload is not None or too_large:
            drained += await _drain(part)
            continue
        data = bytearray()
        while chunk := await part.read_chunk(_CHUNK):
            data.extend(chunk)
            if len(data) > limit:
                too_large = True
                drained += await _drain(part)
                break
        if not too_large:
            upload = (part.filename, part.headers.get("Content-Type"), bytes(data))
        if drained > _DRAIN_LIMIT:
            break
    if too_large:
        raise ApiError(
            413,
            {
                "error": "media_too_large",
                "message": f"media uploads are limited to {limit} bytes",
                "limit_bytes": limit,
            },
        )
    if upload is None:
        raise missing
    return upload


async def _drain(part: BodyPartReader) -> int:
    total = 0
    while chunk := await part.read_chunk(_CHUNK):
        total += len(chunk)
        if total > _DRAIN_LIMIT:
            break
    return total


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header, checked: 1-255 printable ASCII characters."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key.strip() or len(key) > 255 or not key.isascii() or not key.isprintable():
        raise unprocessable(
            ["header", "Idempotency-Key"], "must be 1 to 255 printable ASCII characters"
        )
    return key
