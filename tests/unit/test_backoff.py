"""Retry policy: what is retried, full-jitter backoff, Retry-After, bounded attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from imbot.client.backoff import (
    IN_PROGRESS_CODE,
    RETRYABLE_STATUSES,
    RetryPolicy,
    parse_retry_after,
)
from imbot.client.error_map import error_for_response
from imbot.errors import (
    ConnectError,
    InkboxError,
    TransportError,
)


def api_error(
    status: int, code: str | None = None, retry_after: float | None = None
) -> InkboxError:
    body = {"detail": {"error": code, "message": "x"}} if code else {"detail": "x"}
    return error_for_response(status, body, retry_after=retry_after)


def test_retryable_statuses() -> None:
    assert frozenset({429, 502, 503, 504}) == RETRYABLE_STATUSES


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_status_is_retried(status: int) -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(api_error(status), idempotent=True)
    assert policy.next_delay(0, api_error(status), idempotent=True) is not None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 500, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    policy = RetryPolicy()
    assert not policy.is_retryable(api_error(status), idempotent=True)
    assert policy.next_delay(0, api_error(status), idempotent=True) is None


def test_idempotency_in_progress_is_retried() -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(api_error(409, IN_PROGRESS_CODE), idempotent=True)
    assert not policy.is_retryable(api_error(409, "idempotency_key_reused"), idempotent=True)


def test_transport_errors() -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(TransportError("reset"), idempotent=True)
    assert policy.is_retryable(ConnectError("refused"), idempotent=True)
    # Not idempotent: only a connection that never opened is safe to repeat.
    assert not policy.is_retryable(TransportError("reset"), idempotent=False)
    assert policy.is_retryable(ConnectError("refused"), idempotent=False)


def test_non_idempotent_requests_retry_only_refusals() -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(api_error(429), idempotent=False)
    for status in (502, 503, 504):
        assert not policy.is_retryable(api_error(status), idempotent=False)
    assert not policy.is_retryable(api_error(409, IN_PROGRESS_CODE), idempotent=False)


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    error = api_error(503)
    assert policy.next_delay(0, error, idempotent=True) is not None
    assert policy.next_delay(1, error, idempotent=True) is not None
    assert policy.next_delay(2, error, idempotent=True) is None
    assert RetryPolicy(max_attempts=1).next_delay(0, error, idempotent=True) is None


def test_full_jitter_windows() -> None:
    top = RetryPolicy(base=0.25, cap=1.0, rng=lambda: 0.999999)
    assert top.backoff(0) == pytest.approx(0.25, rel=1e-3)
    assert top.backoff(1) == pytest.approx(0.5, rel=1e-3)
    assert top.backoff(2) == pytest.approx(1.0, rel=1e-3)
    assert top.backoff(10) == pytest.approx(1.0, rel=1e-3)  # capped
    assert RetryPolicy(rng=lambda: 0.0).backoff(3) == 0.0


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(base=1.0, cap=1.0)
    delays = {round(policy.backoff(0), 6) for _ in range(50)}
    assert len(delays) > 10
    assert all(0.0 <= d <= 1.0 for d in delays)


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(rng=lambda: 0.5)
    assert policy.backoff(0, retry_after=2.0) == 2.0
    assert policy.next_delay(0, api_error(429, retry_after=3.0), idempotent=True) == 3.0
    # A smaller Retry-After than the jittered window keeps the window.
    big = RetryPolicy(base=4.0, rng=lambda: 0.5)
    assert big.backoff(0, retry_after=1.0) == 2.0


def test_retry_after_over_the_limit_raises_instead() -> None:
    policy = RetryPolicy(max_retry_after=5.0)
    assert policy.next_delay(0, api_error(429, retry_after=5.0), idempotent=True) == 5.0
    assert policy.next_delay(0, api_error(429, retry_after=5.5), idempotent=True) is None
    assert policy.next_delay(0, api_error(503, retry_after=60), idempotent=True) is None


def test_invalid_policies() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base=-1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("3", 3.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("soon", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 6, 9, 14, 30, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    # A date without a zone is read as UTC.
    assert parse_retry_after("Tue, 09 Jun 2026 14:31:00 -0000", now=now) == 60.0


def test_parse_retry_after_http_date_against_the_clock() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    value = parse_retry_after(soon)
    assert value is not None
    assert 25 <= value <= 31
