"""Path and query parameters, validated into FastAPI-style 422 answers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from imbot.sim.responses import unprocessable
from imbot.sim.validation import E164

__all__ = ["Query", "path_e164", "path_uuid"]


def path_uuid(value: str, name: str) -> str:
    """Return the canonical form of a UUID path parameter, else raise a 422."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise unprocessable(
            ["path", name], "Input should be a valid UUID", "uuid_parsing"
        ) from None


def path_e164(value: str, name: str = "number") -> str:
    """Return an E.164 path parameter, else raise the contract's 422."""
    if not E164.match(value):
        raise unprocessable(["path", name], "must be an E.164 phone number like +15551234567")
    return value


class Query:
    """Typed access to query parameters, raising FastAPI-style 422s."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self._params = params

    def get(self, name: str) -> str | None:
        """Return a string parameter, or ``None``."""
        return self._params.get(name)

    def uuid(self, name: str) -> str | None:
        """Return a UUID parameter in canonical form, or ``None``."""
        value = self._params.get(name)
        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise unprocessable(
                ["query", name], "Input should be a valid UUID", "uuid_parsing"
            ) from None

    def integer(self, name: str, default: int, *, ge: int, le: int | None = None) -> int:
        """Return an integer parameter within bounds."""
        value = self._params.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise unprocessable(
                ["query", name],
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            ) from None
        if number < ge:
            raise unprocessable(
                ["query", name],
                f"Input should be greater than or equal to {ge}",
                "greater_than_equal",
            )
        if le is not None and number > le:
            raise unprocessable(
                ["query", name], f"Input should be less than or equal to {le}", "less_than_equal"
            )
        return number

    def limit(self) -> int:
        """The usual ``limit`` (1-200, default 50)."""
        return self.integer("limit", 50, ge=1, le=200)

    def offset(self) -> int:
        """The usual ``offset`` (>= 0, default 0)."""
        return self.integer("offset", 0, ge=0)

    def flag(self, name: str) -> bool | None:
        """Return a tri-state boolean parameter (``true``/``false``, also 1/0/yes/no/on/off)."""
        value = self._params.get(name)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in ("true", "1", "yes", "on", "t", "y"):
            return True
        if lowered in ("false", "0", "no", "off", "f", "n"):
            return False
        raise unprocessable(
            ["query", name],
            "Input should be a valid boolean, unable to interpret input",
            "bool_parsing",
        )

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        """Return a parameter that must be one of ``choices``."""
        value = self._params.get(name)
        if value is not None and value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise unprocessable(["query", name], f"Input should be {allowed}", "enum")
        return value

    def time_range(self) -> tuple[str | None, str | None]:
        """Resolve ``start_datetime`` / ``end_datetime`` / ``tz`` to ISO UTC bounds.

        A bare date is the whole day (inclusive), a naive datetime is read in ``tz``
        (UTC by default), a zoned datetime is an exact instant. The end bound is
        exclusive of anything after it.
        """
        tz_name = self._params.get("tz")
        zone: Any = UTC
        if tz_name:
            try:
                zone = ZoneInfo(tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                raise unprocessable(["query", "tz"], "Unknown IANA time zone") from None
        start = self._instant("start_datetime", zone, end=False)
        end = self._instant("end_datetime", zone, end=True)
        return start, end

    def _instant(self, name: str, zone: Any, *, end: bool) -> str | None:
        value = self._params.get(name)
        if value is None or value == "":
            return None
        try:
            if len(value) == 10:
                day = date.fromisoformat(value)
                moment = datetime.combine(day, time.min, zone)
                if end:
                    moment += timedelta(days=1) - timedelta(microseconds=1)
            else:
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=zone)
        except ValueError:
            raise unprocessable(
                ["query", name], "Input should be a valid date or datetime", "datetime_parsing"
            ) from None
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
