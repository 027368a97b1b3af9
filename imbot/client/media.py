"""Media uploads: the ``upload_media`` endpoint, and reading and encoding what it sends.

The size is checked before any byte is read when it can be known (``stat`` for paths and
real files, ``seek`` for seekable streams); otherwise at most one byte past the cap is read.
The URL an upload returns goes into ``send_message(media_urls=[...])``.
"""

from __future__ import annotations

import mimetypes
import os
import uuid
from pathlib import Path
from typing import IO, BinaryIO

import anyio.to_thread

from imbot.client._request import _BaseClient
from imbot.errors import MediaTooLarge
from imbot.models import MediaUpload

MAX_MEDIA_BYTES = 10 * 1024 * 1024
"""The largest file the media endpoint accepts: 10 MiB."""

MediaSource = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO
"""What ``upload_media`` accepts: the content itself, a path, or a file open in binary mode."""


async def read_media(
    source: MediaSource, filename: str | None, limit: int = MAX_MEDIA_BYTES
) -> tuple[bytes, str]:
    """Return the content to upload and its file name.

    Args:
        source: the content itself, a path, or a file open in binary mode (read from its
            current position).
        filename: the name to upload under; the path's or file's name by default, else
            ``upload``.
        limit: the largest content accepted, in bytes.

    Returns:
        The content and the file name.

    Raises:
        MediaTooLarge: the content is over ``limit`` bytes; nothing was uploaded.
        OSError: the path cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        size = source.nbytes if isinstance(source, memoryview) else len(source)
        if size > limit:
            raise MediaTooLarge(size, limit)
        return bytes(source), filename or "upload"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        size = (await anyio.to_thread.run_sync(path.stat)).st_size
        if size > limit:
            raise MediaTooLarge(size, limit)
        content = await anyio.to_thread.run_sync(_read_capped, path, limit)
        return content, filename or path.name
    known = _remaining_size(source)
    if known is not None and known > limit:
        raise MediaTooLarge(known, limit)
    content = await anyio.to_thread.run_sync(source.read, limit + 1)
    if len(content) > limit:
        # The stream did not tell its size; reading one byte past the cap proves it too big.
        raise MediaTooLarge(len(content), limit)
    name = getattr(source, "name", None)
    default = os.path.basename(name) if isinstance(name, str) and name else "upload"
    return content, filename or default


def _read_capped(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        content = handle.read(limit + 1)
    if len(content) > limit:
        # The file grew between stat() and read().
        raise MediaTooLarge(len(content), limit)
    return content


def _remaining_size(stream: IO[bytes]) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size - stream.tell()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return end - here


def guess_content_type(filename: str) -> str:
    """Guess a MIME type from a file name; ``application/octet-stream`` when unknown.

    Args:
        filename: the name whose extension decides.

    Returns:
        The MIME type.
    """
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def encode_multipart(
    field: str, filename: str, content_type: str, content: bytes
) -> tuple[bytes, str]:
    """Encode one file as a ``multipart/form-data`` body.

    Args:
        field: the form field's name.
        filename: the file name sent with it.
        content_type: the file's MIME type.
        content: the file's bytes.

    Returns:
        The body and the ``Content-Type`` header value (with its boundary).
    """
    boundary = uuid.uuid4().hex
    # Quotes and line breaks in a file name are percent-encoded, as browsers do (WHATWG).
    safe_name = filename.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{safe_name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return b"".join((head, content, tail)), f"multipart/form-data; boundary={boundary}"


class _MediaEndpoints(_BaseClient):
    """The media upload endpoint."""

    async def upload_media(
        self,
        data: MediaSource,
        *,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> MediaUpload:
        """Upload a file (up to 10 MiB) and get a URL to pass in ``media_urls``.

        Example:
            >>> upload = await client.upload_media("receipt.pdf")
            >>> await client.send_message(conversation_id=cid, media_urls=[upload.media_url])

        Args:
            data: the content as bytes, a path (``str`` or ``PathLike``), or a file opened
                in binary mode (read from its current position).
            filename: the name to upload under; the path's or file's name by default.
            content_type: the MIME type; guessed from the name by default.

        Raises:
            MediaTooLarge: over 10 MiB; refused before anything is uploaded.
            PayloadTooLarge: the server refused the size.
        """
        content, name = await read_media(data, filename)
        body, multipart_type = encode_multipart(
            "file", name, content_type or guess_content_type(name), content
        )
        # A repeated upload at worst leaves an unused copy, so it is retried like a read.
        return await self._request(
            "POST",
            "/imessage/media",
            MediaUpload.model_validate_json,
            body=body,
            content_type=multipart_type,
        )
