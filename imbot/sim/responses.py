"""Error answers in Inkbox's (FastAPI's) JSON shape, raised by the rules, drawn by the app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

__all__ = [
    "ApiError",
    "bad_request",
    "conflict",
    "forbidden",
    "json_response",
    "not_found",
    "unprocessable",
]


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Answer with compact JSON."""
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


class ApiError(Exception):
    """An error answer: a status, the ``detail`` member, optional headers.

    The rules raise it before they change anything, so a refused request leaves the
    store as it was.

    Args:
        status: the HTTP status code.
        detail: a string, an object with ``error`` and ``message``, or a FastAPI list.
        headers: extra response headers such as ``Retry-After``.
    """

    def __init__(
        self, status: int, detail: Any, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """Render the error as a JSON response."""
        return json_response({"detail": self.detail}, self.status, self.headers)


def coded(code: str, message: str, /, **extra: Any) -> dict[str, Any]:
    """Build a structured ``detail``: ``{"error": code, "message": message, ...}``."""
    return {"error": code, "message": message, **extra}


def bad_request(message: str) -> ApiError:
    """400 with a string detail."""
    return ApiError(400, message)


def forbidden(message: str, code: str = "forbidden", /, **extra: Any) -> ApiError:
    """403 with a structured detail."""
    return ApiError(403, coded(code, message, **extra))


def not_found(message: str) -> ApiError:
    """404 with a string detail (FastAPI's usual shape)."""
    return ApiError(404, message)


def conflict(code: str, message: str, /, **extra: Any) -> ApiError:
    """409 with a structured detail."""
    return ApiError(409, coded(code, message, **extra))


def unprocessable(loc: list[str | int], msg: str, kind: str = "value_error") -> ApiError:
    """422 in FastAPI's list form, for one problem at ``loc``."""
    return ApiError(422, [{"loc": loc, "msg": msg, "type": kind}])
