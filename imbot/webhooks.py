"""Webhook signatures and parsing: sign a body, verify a request, parse an event.

Inkbox signs each delivery with HMAC-SHA256 over ``"{request_id}.{timestamp}." + body``,
keyed by the identity's signing key (a leading ``whsec_`` is not part of the key). This
module does no IO, so the server, the simulator and the test kit share it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Iterable, Mapping

from imbot.errors import InvalidSignature
from imbot.events import parse_event

__all__ = [
    "REQUEST_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "compute_signature",
    "parse_event",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Inkbox-Signature"
REQUEST_ID_HEADER = "X-Inkbox-Request-ID"
TIMESTAMP_HEADER = "X-Inkbox-Timestamp"

_DEFAULT_TOLERANCE = 300


def _key_bytes(secret: str) -> bytes:
    return secret.removeprefix("whsec_").encode()


def compute_signature(body: bytes, secret: str, request_id: str, timestamp: str) -> str:
    """Return the ``sha256=<hex>`` signature of one delivery.

    Args:
        body: the raw request body.
        secret: the signing key, with or without its ``whsec_`` prefix.
        request_id: the ``X-Inkbox-Request-ID`` value.
        timestamp: the ``X-Inkbox-Timestamp`` value (Unix seconds, as sent).
    """
    mac = hmac.new(_key_bytes(secret), f"{request_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return "sha256=" + mac.hexdigest()


def sign(
    body: bytes,
    secret: str,
    *,
    request_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Build the three ``X-Inkbox-*`` headers for a webhook body.

    Example:
        >>> headers = sign(b'{"id": "evt_1"}', "whsec_abc")
        >>> sorted(headers)
        ['X-Inkbox-Request-ID', 'X-Inkbox-Signature', 'X-Inkbox-Timestamp']

    Args:
        body: the exact bytes that will be sent.
        secret: the signing key, with or without its ``whsec_`` prefix.
        request_id: the delivery's id; a fresh UUID when omitted.
        timestamp: Unix seconds; now when omitted.

    Returns:
        A dict of header name to value.
    """
    rid = request_id if request_id is not None else str(uuid.uuid4())
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        REQUEST_ID_HEADER: rid,
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: compute_signature(body, secret, rid, ts),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Iterable[str],
    *,
    tolerance: float = _DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a webhook request's signature and timestamp window.

    Several secrets may be given while a signing key is being rotated: the request passes
    when any of them matches. Comparison is constant-time.

    Example:
        >>> body = b"{}"
        >>> verify(body, sign(body, "whsec_k"), ["whsec_old", "whsec_k"])

    Args:
        body: the raw request body, before any JSON parsing.
        headers: the request headers (names are matched case-insensitively).
        secrets: one signing key or several.
        tolerance: how far, in seconds, the timestamp may be from now, either way.
        now: the current Unix time; the clock when omitted.

    Raises:
        InvalidSignature: with ``reason`` one of ``no_secret``, ``missing_header``,
            ``malformed_header``, ``bad_timestamp``, ``stale_timestamp`` or
            ``bad_signature``.
    """
    given = [secrets] if isinstance(secrets, str) else list(secrets)
    # An empty key would let anyone sign; treat it as no key at all.
    keys = [s for s in given if s and _key_bytes(s)]
    if not keys:
        raise InvalidSignature("no_secret", "no signing key is configured to verify webhooks")
    signature = _header(headers, SIGNATURE_HEADER)
    request_id = _header(headers, REQUEST_ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    for name, value in (
        (SIGNATURE_HEADER, signature),
        (REQUEST_ID_HEADER, request_id),
        (TIMESTAMP_HEADER, timestamp),
    ):
        if not value:
            raise InvalidSignature("missing_header", f"the {name} header is missing")
        if not value.isascii():
            # A raw 0xff byte arrives as a lone surrogate, which cannot be encoded below.
            raise InvalidSignature("malformed_header", f"the {name} header is not ASCII")
    assert signature is not None and request_id is not None and timestamp is not None
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature(
            "bad_timestamp", f"{TIMESTAMP_HEADER} is not Unix seconds: {timestamp!r}"
        ) from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise InvalidSignature(
            "stale_timestamp",
            f"timestamp is {int(current - sent_at)} s from now, outside ±{int(tolerance)} s",
        )
    prefix = f"{request_id}.{timestamp}.".encode()
    received = signature.encode()
    matched = False
    for secret in keys:
        mac = hmac.new(_key_bytes(secret), prefix, hashlib.sha256)
        mac.update(body)
        expected = b"sha256=" + mac.hexdigest().encode()
        # Every key is tried, even after a match, so timing does not reveal which one fits.
        matched |= hmac.compare_digest(expected, received)
    if not matched:
        raise InvalidSignature("bad_signature", "the signature does not match the body")
