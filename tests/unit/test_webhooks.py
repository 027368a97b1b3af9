"""Webhook signatures: interoperable with the official SDK both ways, and every refusal."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import pytest
from inkbox.signing_keys import verify_webhook

from imbot.errors import InvalidSignature
from imbot.events import MessageReceived
from imbot.webhooks import (
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    parse_event,
    sign,
    verify,
)

EXAMPLES_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "wire_examples.json"
BODY = json.dumps(
    json.loads(EXAMPLES_FILE.read_text("utf-8"))["examples"]["event_received"]
).encode()
SECRET = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM"
NOW = 1_781_015_459  # a fixed "now" for the timestamp window


def official_headers(body: bytes, secret: str, request_id: str, timestamp: int) -> dict[str, str]:
    """Sign the way the Inkbox docs and SDK describe it, written out independently."""
    key = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    message = f"{request_id}.{timestamp}.".encode() + body
    digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return {
        "x-inkbox-request-id": request_id,
        "x-inkbox-timestamp": str(timestamp),
        "x-inkbox-signature": f"sha256={digest}",
    }


def reason(body: bytes, headers: dict[str, str], secrets: str | list[str] = SECRET) -> str:
    with pytest.raises(InvalidSignature) as info:
        verify(body, headers, secrets, now=NOW)
    return info.value.reason


def test_our_signature_passes_the_official_verifier() -> None:
    headers = sign(BODY, SECRET)
    assert set(headers) == {REQUEST_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER}
    assert verify_webhook(payload=BODY, headers=headers, secret=SECRET)
    # The SDK accepts the key with or without its prefix; so must our signature.
    assert verify_webhook(payload=BODY, headers=headers, secret=SECRET.removeprefix("whsec_"))
    # And the oracle can say no: a changed body fails it.
    assert not verify_webhook(payload=BODY + b" ", headers=headers, secret=SECRET)


def test_an_official_signature_passes_ours() -> None:
    headers = official_headers(BODY, SECRET, str(uuid.uuid4()), NOW)
    verify(BODY, headers, SECRET, now=NOW)
    verify(BODY, headers, SECRET.removeprefix("whsec_"), now=NOW)
    assert verify_webhook(payload=BODY, headers=headers, secret=SECRET)


def test_signing_without_the_prefix_gives_the_same_signature() -> None:
    with_prefix = sign(BODY, SECRET, request_id="r1", timestamp=NOW)
    without = sign(BODY, SECRET.removeprefix("whsec_"), request_id="r1", timestamp=NOW)
    assert with_prefix == without
    assert with_prefix == {
        REQUEST_ID_HEADER: "r1",
        TIMESTAMP_HEADER: str(NOW),
        SIGNATURE_HEADER: compute_signature(BODY, SECRET, "r1", str(NOW)),
    }
    assert (
        with_prefix[SIGNATURE_HEADER]
        == official_headers(BODY, SECRET, "r1", NOW)["x-inkbox-signature"]
    )


def test_sign_defaults_to_a_fresh_id_and_now() -> None:
    before = int(time.time())
    first, second = sign(BODY, SECRET), sign(BODY, SECRET)
    assert first[REQUEST_ID_HEADER] != second[REQUEST_ID_HEADER]
    uuid.UUID(first[REQUEST_ID_HEADER])
    assert before <= int(first[TIMESTAMP_HEADER]) <= int(time.time())
    verify(BODY, first, SECRET)  # against the real clock


def test_header_names_ignore_case() -> None:
    headers = {k.upper(): v for k, v in sign(BODY, SECRET, timestamp=NOW).items()}
    verify(BODY, headers, SECRET, now=NOW)


def test_a_changed_body_is_refused() -> None:
    headers = sign(BODY, SECRET, timestamp=NOW)
    assert reason(BODY.replace(b"Friday", b"Monday"), headers) == "bad_signature"
    assert reason(BODY + b"\n", headers) == "bad_signature"


def test_a_wrong_secret_is_refused() -> None:
    headers = sign(BODY, SECRET, timestamp=NOW)
    assert reason(BODY, headers, "whsec_other") == "bad_signature"


def test_a_changed_request_id_or_timestamp_is_refused() -> None:
    headers = sign(BODY, SECRET, request_id="r1", timestamp=NOW)
    assert reason(BODY, {**headers, REQUEST_ID_HEADER: "r2"}) == "bad_signature"
    assert reason(BODY, {**headers, TIMESTAMP_HEADER: str(NOW - 1)}) == "bad_signature"


@pytest.mark.parametrize("bad", ["", "sha256=", "deadbeef", "sha1=abc"])
def test_malformed_signature_values_are_refused(bad: str) -> None:
    headers = {**sign(BODY, SECRET, timestamp=NOW), SIGNATURE_HEADER: bad}
    assert reason(BODY, headers) in {"bad_signature", "missing_header"}


def test_the_signature_needs_its_prefix_and_lowercase_hex() -> None:
    headers = sign(BODY, SECRET, timestamp=NOW)
    digest = headers[SIGNATURE_HEADER].removeprefix("sha256=")
    assert reason(BODY, {**headers, SIGNATURE_HEADER: digest}) == "bad_signature"
    assert (
        reason(BODY, {**headers, SIGNATURE_HEADER: "sha256=" + digest.upper()}) == "bad_signature"
    )


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, REQUEST_ID_HEADER, TIMESTAMP_HEADER])
def test_a_missing_header_is_refused(missing: str) -> None:
    headers = sign(BODY, SECRET, timestamp=NOW)
    del headers[missing]
    with pytest.raises(InvalidSignature) as info:
        verify(BODY, headers, SECRET, now=NOW)
    assert info.value.reason == "missing_header"
    assert missing in str(info.value)


@pytest.mark.parametrize("offset", [301, -301, 3600, -86400])
def test_stale_timestamps_are_refused_both_ways(offset: int) -> None:
    headers = sign(BODY, SECRET, timestamp=NOW - offset)
    assert reason(BODY, headers) == "stale_timestamp"


@pytest.mark.parametrize("offset", [0, 300, -300, 299, -299])
def test_timestamps_inside_the_window_pass(offset: int) -> None:
    verify(BODY, sign(BODY, SECRET, timestamp=NOW - offset), SECRET, now=NOW)


def test_the_window_is_configurable() -> None:
    headers = sign(BODY, SECRET, timestamp=NOW - 20)
    verify(BODY, headers, SECRET, now=NOW, tolerance=30)
    with pytest.raises(InvalidSignature, match="outside"):
        verify(BODY, headers, SECRET, now=NOW, tolerance=10)


@pytest.mark.parametrize("value", ["soon", "1781015459.5", "", "0x10"])
def test_non_integer_timestamps_are_refused(value: str) -> None:
    headers = official_headers(BODY, SECRET, "r1", NOW)
    headers["x-inkbox-timestamp"] = value
    expected = "missing_header" if value == "" else "bad_timestamp"
    assert reason(BODY, headers) == expected


def test_rotation_accepts_any_configured_secret() -> None:
    old, new = "whsec_old_key", "whsec_new_key"
    signed_old = sign(BODY, old, timestamp=NOW)
    signed_new = sign(BODY, new, timestamp=NOW)
    verify(BODY, signed_old, [old, new], now=NOW)
    verify(BODY, signed_new, [old, new], now=NOW)
    verify(BODY, signed_new, (s for s in [new, old]), now=NOW)
    assert reason(BODY, signed_old, [new]) == "bad_signature"
    assert reason(BODY, signed_old, ["whsec_a", "whsec_b"]) == "bad_signature"


def test_no_secret_is_refused() -> None:
    headers = sign(BODY, SECRET, timestamp=NOW)
    assert reason(BODY, headers, []) == "no_secret"
    assert reason(BODY, headers, ["", ""]) == "no_secret"


def test_an_empty_key_never_verifies() -> None:
    # Anyone can compute an HMAC with an empty key; it must not count as configured.
    forged = official_headers(BODY, "", "r1", NOW)
    assert reason(BODY, forged, "") == "no_secret"
    assert reason(BODY, forged, "whsec_") == "no_secret"
    assert reason(BODY, forged, ["whsec_", SECRET]) == "bad_signature"


def test_parse_event_is_offered_here_too() -> None:
    headers = sign(BODY, SECRET, timestamp=NOW)
    verify(BODY, headers, SECRET, now=NOW)
    event = parse_event(BODY)
    assert isinstance(event, MessageReceived)
    assert event.id == "evt_01J0R8Z4M6K2"
