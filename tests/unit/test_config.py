"""Settings resolution: argument, then INKBOX_* environment, then ~/.inkbox/config.

The bot's own settings (handle, signing keys): argument, then IMBOT_* environment. The
process settings (logging, GC tuning, the simulator's admin key): argument, environment,
default.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imbot.config import (
    DEFAULT_BASE_URL,
    BotSettings,
    Settings,
    child_environment,
    default_config_path,
    normalize_base_url,
    read_config_file,
    resolve_bot_settings,
    resolve_gc_tuning,
    resolve_log_format,
    resolve_log_level,
    resolve_settings,
    resolve_sim_admin_key,
)
from imbot.errors import ConfigError, SetupError


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_argument_wins_over_env_and_file(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "config", "api_key = ApiKey_file\nbase_url = https://file.example\n"
    )
    env = {"INKBOX_API_KEY": "ApiKey_env", "INKBOX_BASE_URL": "https://env.example"}
    settings = resolve_settings("ApiKey_arg", "https://arg.example", env=env, config_path=cfg)
    assert settings.api_key == "ApiKey_arg"
    assert settings.base_url == "https://arg.example"
    assert settings.api_key_source == "argument"
    assert settings.base_url_source == "argument"


def test_env_wins_over_file(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "config", "api_key = ApiKey_file\nbase_url = https://file.example\n"
    )
    env = {"INKBOX_API_KEY": "ApiKey_env", "INKBOX_BASE_URL": "https://env.example/"}
    settings = resolve_settings(env=env, config_path=cfg)
    assert (settings.api_key, settings.base_url) == ("ApiKey_env", "https://env.example")
    assert (settings.api_key_source, settings.base_url_source) == ("env", "env")


def test_empty_env_falls_through_to_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config", "api_key = ApiKey_file\n")
    settings = resolve_settings(
        env={"INKBOX_API_KEY": "  ", "INKBOX_BASE_URL": ""}, config_path=cfg
    )
    assert settings.api_key == "ApiKey_file"
    assert settings.api_key_source == str(cfg)
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.base_url_source == "default"


def test_blank_argument_counts_as_not_given() -> None:
    settings = resolve_settings("", None, env={"INKBOX_API_KEY": "ApiKey_env"})
    assert settings.api_key == "ApiKey_env"


def test_values_are_stripped() -> None:
    settings = resolve_settings(" ApiKey_x\n", " http://127.0.0.1:8787/ ", env={})
    assert settings.api_key == "ApiKey_x"
    assert settings.base_url == "http://127.0.0.1:8787"


def test_config_file_format(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "config",
        "# a comment\n"
        "\n"
        "no equals sign here\n"
        '  api_key = "ApiKey_quoted"  \n'
        "base_url='http://localhost:9000'\n"
        "vault_key = v = with = equals\n"
        "#api_key = ApiKey_commented\n",
    )
    assert read_config_file(cfg) == {
        "api_key": "ApiKey_quoted",
        "base_url": "http://localhost:9000",
        "vault_key": "v = with = equals",
    }
    settings = resolve_settings(env={}, config_path=cfg)
    assert settings.api_key == "ApiKey_quoted"
    assert settings.base_url == "http://localhost:9000"


def test_unbalanced_quotes_are_kept(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config", "api_key = \"ApiKey_x'\n")
    assert read_config_file(cfg) == {"api_key": "\"ApiKey_x'"}


def test_missing_or_unreadable_file_reads_empty(tmp_path: Path) -> None:
    assert read_config_file(tmp_path / "nope") == {}
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert read_config_file(binary) == {}


def test_default_path_is_in_home() -> None:
    # conftest points HOME at a temporary directory.
    assert default_config_path() == Path(os.environ["HOME"]) / ".inkbox" / "config"


def test_default_config_file_is_read_from_home() -> None:
    write_config(default_config_path(), "api_key = ApiKey_home\n")
    settings = resolve_settings(env={})
    assert settings.api_key == "ApiKey_home"


def test_os_environ_is_the_default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKBOX_API_KEY", "ApiKey_os")
    monkeypatch.setenv("INKBOX_BASE_URL", "http://127.0.0.1:1234")
    settings = resolve_settings()
    assert settings.api_key == "ApiKey_os"
    assert settings.base_url == "http://127.0.0.1:1234"


def test_file_is_not_read_when_not_needed(tmp_path: Path) -> None:
    missing = tmp_path / "config"
    # A directory where the file should be would fail any read; it must not be touched.
    missing.mkdir()
    settings = resolve_settings("ApiKey_a", "https://a.example", env={}, config_path=missing)
    assert settings.api_key == "ApiKey_a"


def test_missing_key_names_the_env_var(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings(env={}, config_path=tmp_path / "config")
    message = str(info.value)
    assert "INKBOX_API_KEY" in message
    assert "api_key=" in message
    assert isinstance(info.value, SetupError)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8787",
        "http://localhost",
        "http://localhost:9/",
        "https://inkbox.ai",
        "https://example.com:8443/prefix",
    ],
)
def test_accepted_base_urls(url: str) -> None:
    assert normalize_base_url(url) == url.rstrip("/")


def test_plain_http_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings("ApiKey_x", "http://api.example.com", env={})
    message = str(info.value)
    assert "https://api.example.com" in message
    assert "localhost" in message
    assert "base_url=" in message


def test_plain_http_from_env_names_the_env_var() -> None:
    with pytest.raises(ConfigError, match="INKBOX_BASE_URL"):
        resolve_settings("ApiKey_x", env={"INKBOX_BASE_URL": "http://10.0.0.5:8787"})


def test_plain_http_from_file_names_the_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config", "base_url = http://evil.example\n")
    with pytest.raises(ConfigError, match=str(cfg)):
        resolve_settings("ApiKey_x", env={}, config_path=cfg)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://inkbox.ai", "not an http(s) URL"),
        ("inkbox.ai", "not an http(s) URL"),
        ("https://", "not an http(s) URL"),
        ("https://inkbox.ai/api/v1", "origin only: https://inkbox.ai"),
        ("https://inkbox.ai/api/", "origin only"),
        ("https://inkbox.ai/?x=1", "query"),
        ("http://127.0.0.2:80", "plain http"),
    ],
)
def test_invalid_base_urls(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_base_url(url)
    assert fragment in str(info.value)


def test_settings_are_frozen_and_repr_hides_the_key() -> None:
    settings = Settings(api_key="ApiKey_0123456789abcdefWXYZ")
    with pytest.raises(AttributeError):
        settings.api_key = "other"  # type: ignore[misc]
    text = repr(settings)
    assert "0123456789abcdef" not in text
    assert "ApiKey_" in text
    assert "WXYZ" in text
    assert "…" in repr(Settings(api_key="short"))
    assert "short" not in repr(Settings(api_key="short"))


# ---------------------------------------------------------------------------- bot settings

BOT_ENV = {"IMBOT_HANDLE": "envbot", "IMBOT_SIGNING_KEY": "whsec_env"}


def expected_bot(
    handle: str | None, keys: tuple[str, ...], handle_source: str, key_source: str
) -> BotSettings:
    """The ``BotSettings`` a resolution should give (its secrets are keyword-only)."""
    return BotSettings(
        handle=handle,
        signing_keys=keys,
        handle_source=handle_source,
        signing_key_source=key_source,
    )


def test_bot_settings_argument_wins_over_env() -> None:
    settings = resolve_bot_settings("argbot", "whsec_arg", env=BOT_ENV)
    assert settings == expected_bot("argbot", ("whsec_arg",), "argument", "argument")


def test_bot_settings_come_from_env_when_not_given() -> None:
    settings = resolve_bot_settings(env=BOT_ENV)
    assert settings == expected_bot("envbot", ("whsec_env",), "env", "env")


def test_bot_settings_are_each_resolved_on_their_own() -> None:
    settings = resolve_bot_settings("argbot", env=BOT_ENV)
    assert (settings.handle_source, settings.signing_key_source) == ("argument", "env")
    settings = resolve_bot_settings(signing_key=["whsec_a"], env=BOT_ENV)
    assert (settings.handle_source, settings.signing_key_source) == ("env", "argument")


def test_bot_settings_unset() -> None:
    assert resolve_bot_settings(env={}) == expected_bot(None, (), "unset", "unset")
    blank = {"IMBOT_HANDLE": "  ", "IMBOT_SIGNING_KEY": " , ,"}
    assert resolve_bot_settings(env=blank) == BotSettings()


@pytest.mark.parametrize("handle", ["", "   "])
def test_blank_bot_arguments_count_as_not_given(handle: str) -> None:
    settings = resolve_bot_settings(handle, " ", env=BOT_ENV)
    assert settings == expected_bot("envbot", ("whsec_env",), "env", "env")
    settings = resolve_bot_settings(signing_key=["", " "], env=BOT_ENV)
    assert settings.signing_keys == ("whsec_env",)


def test_signing_keys_split_on_commas_for_rotation() -> None:
    env = {"IMBOT_SIGNING_KEY": " whsec_old ,whsec_new,, "}
    assert resolve_bot_settings(env=env).signing_keys == ("whsec_old", "whsec_new")
    assert resolve_bot_settings(signing_key="a, b", env={}).signing_keys == ("a", "b")
    # A sequence is taken key by key: no splitting inside its items.
    assert resolve_bot_settings(signing_key=(" a ", "", "b"), env={}).signing_keys == ("a", "b")


def test_bot_settings_handle_is_stripped() -> None:
    assert resolve_bot_settings(" argbot\n", env={}).handle == "argbot"
    assert resolve_bot_settings(env={"IMBOT_HANDLE": " envbot "}).handle == "envbot"


def test_bot_settings_read_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMBOT_HANDLE", "osbot")
    monkeypatch.setenv("IMBOT_SIGNING_KEY", "k1,k2")
    settings = resolve_bot_settings()
    assert (settings.handle, settings.signing_keys) == ("osbot", ("k1", "k2"))


def test_bot_settings_are_frozen_and_repr_hides_the_keys() -> None:
    settings = resolve_bot_settings("bot", "whsec_0123456789abcdefWXYZ", env={})
    with pytest.raises(AttributeError):
        settings.handle = "other"  # type: ignore[misc]
    text = repr(settings)
    assert "0123456789abcdef" not in text
    assert "WXYZ" in text and "'bot'" in text


def test_secrets_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Settings("ApiKey_positional")  # type: ignore[misc]
    with pytest.raises(TypeError):
        BotSettings("bot", ("whsec_positional",))  # type: ignore[misc]


# --------------------------------------------------------------------------- process settings


def test_log_level_argument_then_env_then_info() -> None:
    env = {"IMBOT_LOG_LEVEL": "debug"}
    assert resolve_log_level("WARNING", env=env) == "WARNING"
    assert resolve_log_level(10, env=env) == 10
    assert resolve_log_level(env=env) == "debug"
    assert resolve_log_level(env={}) == "INFO"
    assert resolve_log_level(env={"IMBOT_LOG_LEVEL": "  "}) == "INFO"


def test_log_format_argument_then_env_then_none() -> None:
    env = {"IMBOT_LOG_FORMAT": " JSON "}
    assert resolve_log_format("console", env=env) == "console"
    assert resolve_log_format(env=env) == "json"
    assert resolve_log_format("", env=env) == "json"
    assert resolve_log_format(env={}) is None


def test_logging_settings_read_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMBOT_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("IMBOT_LOG_FORMAT", "console")
    assert (resolve_log_level(), resolve_log_format()) == ("ERROR", "console")


@pytest.mark.parametrize("value", ["0", "false", "No", " OFF "])
def test_gc_tuning_is_switched_off_by_the_env(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("IMBOT_GC_TUNING", value)
    assert resolve_gc_tuning(None) is False
    assert resolve_gc_tuning(True) is True  # the argument wins


@pytest.mark.parametrize("value", [None, "", "1", "yes", "on"])
def test_gc_tuning_is_on_by_default(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("IMBOT_GC_TUNING", raising=False)
    else:
        monkeypatch.setenv("IMBOT_GC_TUNING", value)
    assert resolve_gc_tuning(None) is True
    assert resolve_gc_tuning(False) is False  # the argument wins


def test_sim_admin_key_argument_then_env_then_stored() -> None:
    env = {"IMBOT_SIM_ADMIN_KEY": "ApiKey_env"}
    assert resolve_sim_admin_key("ApiKey_arg", env=env) == "ApiKey_arg"
    assert resolve_sim_admin_key(None, env=env) == "ApiKey_env"
    assert resolve_sim_admin_key("", env=env) == "ApiKey_env"
    assert resolve_sim_admin_key(None, env={"IMBOT_SIM_ADMIN_KEY": ""}) is None
    assert resolve_sim_admin_key(None, env={}) is None


def test_sim_admin_key_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMBOT_SIM_ADMIN_KEY", "ApiKey_os")
    assert resolve_sim_admin_key() == "ApiKey_os"


def test_child_environment_puts_the_overrides_on_top(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PATH": "/bin", "IMBOT_HANDLE": "old"}
    child = child_environment({"IMBOT_HANDLE": "new"}, env=env)
    assert child == {"PATH": "/bin", "IMBOT_HANDLE": "new"}
    assert env["IMBOT_HANDLE"] == "old"
    monkeypatch.setenv("IMBOT_TEST_MARK", "x")
    child = child_environment({})
    assert child["IMBOT_TEST_MARK"] == "x"
    child["IMBOT_TEST_MARK"] = "changed"
    assert os.environ["IMBOT_TEST_MARK"] == "x"
