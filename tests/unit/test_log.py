"""Logging: secrets are masked in every format, tracebacks show no local variables by default.

``tests/regressions/test_secrets_in_logs.py`` runs ``imbot run`` with replies failing for
real; these tests hold the pieces: the masking of text and values, the processor, the
console and JSON tracebacks, the standard library's lines, and the settings.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from imbot.config import resolve_log_locals, resolve_log_secrets
from imbot.log import (
    REDACTED,
    configure_logging,
    redact,
    redact_text,
    redact_value,
    register_secret,
    set_debug,
)

API_KEY = "ApiKey_Qm9vZ2xlIGl0LCBJIGRhcmUgeW91"
SIGNING_KEY = "whsec_c2lnbmluZyBrZXkgZm9yIHRlc3Rz"
HEADERS = {"X-API-Key": API_KEY, "Accept": "application/json"}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo ``configure_logging``: structlog's defaults, the root logger's handlers."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.reset_defaults()
        set_debug(False)
        root.handlers[:] = handlers
        root.setLevel(level)


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {API_KEY} end", "key ApiKey_*** end"),
        (f"secret={SIGNING_KEY}", "secret=whsec_***"),
        ("{'X-API-Key': 'custom-key-1234'}", "{'X-API-Key': '***'}"),
        ('{"x-api-key": "custom-key-1234", "n": 1}', '{"x-api-key": "***", "n": 1}'),
        ("X-API-Key: custom-key-1234\r\nAccept: */*", "X-API-Key: ***\r\nAccept: */*"),
        ("Authorization: Bearer tok.en-123", "Authorization: Bearer ***"),
        ("'Authorization': 'Basic dXNlcjpwYXNz'", "'Authorization': 'Basic ***'"),
        ("INKBOX_API_KEY=custom-key-1234 next", "INKBOX_API_KEY=*** next"),
        ("api_key='ApiKey_…wxyz', base_url='x'", "api_key='***', base_url='x'"),
        ("signing_key = abcdefgh1234", "signing_key = ***"),
        ("https://x.test/?api_key=abc123&n=2", "https://x.test/?api_key=***&n=2"),
    ],
)
def test_secrets_in_text_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "signing_key_configured: true",
        "api_key_source='env'",
        "InvalidSignature reason=no_secret",
        "add 'api_key = ApiKey_...' to ~/.inkbox/config",
        "409 conversation_released: this conversation was released",
        "POST http://127.0.0.1:8787/api/v1/imessage/messages: cannot connect",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_a_registered_secret_of_any_shape_is_masked() -> None:
    odd = "sk-proj-0123456789abcdefXYZ"
    assert redact_text(f"token is {odd}!") == f"token is {odd}!"
    register_secret(odd)
    assert redact_text(f"token is {odd}!") == f"token is {REDACTED}!"
    register_secret("short")  # too short to mask without masking ordinary words
    assert redact_text("a short note") == "a short note"


# --------------------------------------------------------------------------- values


class Holder:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def __repr__(self) -> str:
        return f"Holder({self.headers!r})"


def test_nested_values_and_secret_names_are_masked() -> None:
    value = {
        "request": {"headers": dict(HEADERS), "attempts": [1, 2]},
        "api_key": "anything-at-all",
        "Authorization": "Bearer xyz",
        "signing_keys": [SIGNING_KEY, "whsec_second"],
        "signing_key": None,
        "notes": (f"used {API_KEY}", 3),
        "holder": Holder(dict(HEADERS)),
    }
    masked = redact_value(value)
    assert masked["request"] == {
        "headers": {"X-API-Key": REDACTED, "Accept": "application/json"},
        "attempts": [1, 2],
    }
    assert masked["api_key"] == masked["Authorization"] == masked["signing_keys"] == REDACTED
    assert masked["signing_key"] is None
    assert masked["notes"] == ("used ApiKey_***", 3)
    assert masked["holder"] == "Holder({'X-API-Key': '***', 'Accept': 'application/json'})"
    assert API_KEY not in repr(masked) and SIGNING_KEY not in repr(masked)


def test_objects_without_secrets_are_kept_as_they_are() -> None:
    plain = Holder({"Accept": "text/plain"})
    assert redact_value(plain) is plain
    assert redact_value({"n": 1, "ok": True, "x": None}) == {"n": 1, "ok": True, "x": None}


def test_the_processor_masks_every_value_but_leaves_exc_info() -> None:
    error = ValueError(f"bad {API_KEY}")
    event: dict[str, Any] = {
        "event": f"calling with {API_KEY}",
        "api_key": API_KEY,
        "headers": dict(HEADERS),
        "count": 3,
        "error": ValueError(f"bad {API_KEY}"),
        "exc_info": error,
    }
    out = redact(None, "info", event)
    assert out["error"] == "ValueError('bad ApiKey_***')"
    assert out["event"] == "calling with ApiKey_***"
    assert out["api_key"] == REDACTED
    assert out["headers"]["X-API-Key"] == REDACTED
    assert out["count"] == 3
    assert out["exc_info"] is error  # the renderer masks the rendered traceback


# --------------------------------------------------------------------------- configured output


def _fail_with_secrets_in_locals() -> None:
    headers = dict(HEADERS)  # a frame local, as the client's request loop holds one
    text = "the human's private words"
    raise RuntimeError(f"send failed with {headers['X-API-Key']} for {len(text)} chars")


def _log_a_failure(stream: io.StringIO) -> str:
    log = structlog.get_logger("test")
    try:
        _fail_with_secrets_in_locals()
    except RuntimeError:
        log.exception("reply failed", signing_key=SIGNING_KEY, detail={"Authorization": "x"})
    return stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_json_tracebacks_have_no_locals_and_no_secrets() -> None:
    stream = io.StringIO()
    configure_logging("INFO", fmt="json", stream=stream)
    output = _log_a_failure(stream)
    (line,) = [json.loads(raw) for raw in output.splitlines()]
    assert line["event"] == "reply failed"
    assert line["signing_key"] == REDACTED
    assert line["detail"] == {"Authorization": REDACTED}
    (exc,) = line["exception"]
    assert exc["exc_type"] == "RuntimeError"
    assert exc["exc_value"] == "send failed with ApiKey_*** for 25 chars"
    assert all("locals" not in frame for frame in exc["frames"])
    assert API_KEY not in output and SIGNING_KEY not in output
    assert "private words" not in output


@pytest.mark.usefixtures("restore_logging")
def test_console_tracebacks_have_no_locals_and_no_secrets() -> None:
    stream = io.StringIO()
    configure_logging("INFO", fmt="console", stream=stream)
    output = _log_a_failure(stream)
    assert "reply failed" in output
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: send failed with ApiKey_*** for 25 chars" in output
    assert API_KEY not in output and SIGNING_KEY not in output
    assert "private words" not in output and "headers = " not in output


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.usefixtures("restore_logging")
def test_locals_are_shown_when_asked_for_with_secrets_still_masked(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", fmt=fmt, stream=stream, show_locals=True)  # type: ignore[arg-type]
    output = _log_a_failure(stream)
    assert "private words" in output  # the locals are there: that is what was asked
    assert "X-API-Key" in output
    assert API_KEY not in output and SIGNING_KEY not in output


@pytest.mark.usefixtures("restore_logging")
def test_keys_in_the_environment_are_masked_whatever_their_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INKBOX_API_KEY", "plain-looking-api-key-42")
    monkeypatch.setenv("IMBOT_SIGNING_KEY", "rotating-old-key-1, rotating-new-key-2")
    stream = io.StringIO()
    configure_logging("INFO", fmt="json", stream=stream)
    structlog.get_logger("test").warning(
        "echo", said="plain-looking-api-key-42 / rotating-new-key-2 / rotating-old-key-1"
    )
    assert json.loads(stream.getvalue())["said"] == f"{REDACTED} / {REDACTED} / {REDACTED}"


@pytest.mark.usefixtures("restore_logging")
def test_the_standard_librarys_lines_are_masked() -> None:
    logging.getLogger().handlers.clear()  # pytest's own capture would otherwise stay first
    stream = io.StringIO()
    configure_logging("INFO", fmt="json", stream=stream)
    logging.getLogger("aiohttp.client").error("request with %s failed", HEADERS)
    assert stream.getvalue() == (
        "ERROR aiohttp.client: request with "
        "{'X-API-Key': '***', 'Accept': 'application/json'} failed\n"
    )


# --------------------------------------------------------------------------- settings


def test_locals_setting_is_off_unless_switched_on() -> None:
    assert resolve_log_locals(env={}) is False
    assert resolve_log_locals(env={"IMBOT_LOG_LOCALS": "0"}) is False
    assert resolve_log_locals(env={"IMBOT_LOG_LOCALS": " Yes "}) is True
    assert resolve_log_locals(False, env={"IMBOT_LOG_LOCALS": "1"}) is False
    assert resolve_log_locals(True, env={}) is True


def test_log_secrets_come_from_the_environment_and_the_config_file(tmp_path: Any) -> None:
    config = tmp_path / "config"
    config.write_text("api_key = ApiKey_from_file_123\n")
    env = {"IMBOT_SIGNING_KEY": "whsec_a1, whsec_b2", "IMBOT_SIM_ADMIN_KEY": "ApiKey_admin"}
    assert resolve_log_secrets(env=env, config_path=config) == (
        "ApiKey_from_file_123",
        "whsec_a1",
        "whsec_b2",
        "ApiKey_admin",
    )
    env["INKBOX_API_KEY"] = "ApiKey_from_env_456"
    assert resolve_log_secrets(env=env, config_path=config)[0] == "ApiKey_from_env_456"
    assert resolve_log_secrets(env={}, config_path=tmp_path / "missing") == ()
