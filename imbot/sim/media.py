"""Uploaded media: stored in the database, served back at ``/media/<uuid>/<filename>``."""

from __future__ import annotations

import mimetypes
import re
import uuid
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from imbot.sim.core import Core, new_id
from imbot.sim.store import Row

__all__ = ["MediaStore", "served_headers"]

_GENERIC = {"", "application/octet-stream"}

# Uploads are anyone's bytes served from the simulator's own origin, where a script could
# drive /sim/v1. A sandbox makes an opened file a unique origin with no script; the rest
# still lets an image, video or audio file display when opened on its own.
_SANDBOX = (
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
)
_INLINE_FAMILIES = ("image/", "video/", "audio/")


def _inline(content_type: str) -> bool:
    # SVG and any other XML type is a document that can hold script, whatever its family.
    kind = content_type.lower()
    return kind.startswith(_INLINE_FAMILIES) and "xml" not in kind and "svg" not in kind


def served_headers(content_type: str, filename: str) -> dict[str, str]:
    """The headers an uploaded file is served with, beyond its content type.

    ``nosniff`` and a sandboxing CSP always; ``Content-Disposition: attachment`` unless it
    is an image (not SVG), a video or audio, so that opening, say, an HTML upload downloads
    it instead of rendering it on the simulator's origin.
    """
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _SANDBOX,
    }
    if not _inline(content_type):
        fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename) or "file"
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
        )
    return headers


def _clean_filename(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = re.sub(r"[\x00-\x1f]", "", base)
    return base or "file"


class MediaStore:
    """Keeps uploads and describes media URLs.

    Args:
        core: the simulator's shared state.
    """

    def __init__(self, core: Core) -> None:
        self._core = core

    def save(self, filename: str | None, content_type: str | None, data: bytes) -> dict[str, Any]:
        """Store an upload; return ``{"media_url", "content_type", "size"}``.

        A missing or generic content type is guessed from the file name, as the SDK's
        upload docs promise ("filename: used for type inference").
        """
        name = _clean_filename(filename)
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind in _GENERIC:
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        media_id = new_id()
        self._core.store.insert(
            "media",
            {
                "id": media_id,
                "filename": name,
                "content_type": kind,
                "size": len(data),
                "data": data,
                "created_at": self._core.clock.now(),
            },
        )
        return {"media_url": self.url(media_id, name), "content_type": kind, "size": len(data)}

    def url(self, media_id: str, filename: str) -> str:
        """The public URL of a stored file."""
        return f"{self._core.base_url}/media/{media_id}/{quote(filename)}"

    def get(self, media_id: str) -> Row | None:
        """A stored file, or ``None``."""
        return self._core.store.one("SELECT * FROM media WHERE id = ?", (media_id,))

    def describe(self, url: str) -> dict[str, Any]:
        """A media item for a URL: type and size filled in when the file is ours.

        Other URLs are accepted as they are, without fetching them (§16 #19).
        """
        parts = urlsplit(url)
        match = re.fullmatch(r"/media/([0-9a-fA-F-]{36})/[^/]+", parts.path)
        if match and parts.hostname in ("127.0.0.1", "localhost", "::1"):
            try:
                media_id = str(uuid.UUID(match.group(1)))
            except ValueError:
                media_id = ""
            row = self._core.store.one(
                "SELECT content_type, size FROM media WHERE id = ?", (media_id,)
            )
            if row is not None:
                return {"url": url, "content_type": row["content_type"], "size": row["size"]}
        guessed = mimetypes.guess_type(unquote(parts.path))[0]
        return {"url": url, "content_type": guessed, "size": None}
