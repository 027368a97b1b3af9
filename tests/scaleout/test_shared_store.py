"""``Bot.shared_store``: what ``imbot run --workers`` asks before starting several processes."""

from __future__ import annotations

import pytest

from imbot import Bot
from imbot.bot.inbox import Inbox
from imbot.errors import ConfigError
from imbot.storage.urls import open_inbox_store, open_state_store

REDIS = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("kwargs", "shared"),
    [
        ({}, False),
        ({"store": REDIS}, True),
        ({"store": "rediss://:pw@redis.internal:6380/0?prefix=b"}, True),
        ({"store": "sqlite:///bot.db"}, False),
        # The inbox shared, the state in each process: not one bot.
        ({"inbox": REDIS}, False),
        ({"inbox": REDIS, "state": REDIS}, True),
        ({"store": REDIS, "state": "sqlite:///state.db"}, False),
    ],
)
def test_shared_only_when_both_events_and_state_are_in_redis(
    kwargs: dict[str, str], shared: bool
) -> None:
    assert Bot(**kwargs).shared_store is shared  # type: ignore[arg-type]


def test_the_environment_counts_unless_the_code_names_a_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMBOT_STORE", REDIS)
    assert Bot().shared_store is True
    assert Bot(store="sqlite:///bot.db").shared_store is False


def test_nothing_is_opened_and_a_bad_url_is_a_config_error() -> None:
    bot = Bot(store="redis://")
    with pytest.raises(ConfigError, match="names no host"):
        _ = bot.shared_store


def test_store_objects_opened_on_redis_count_as_shared(redis_url: str) -> None:
    inbox, state = Inbox(open_inbox_store(redis_url)), open_state_store(redis_url)
    assert Bot(inbox=inbox, state=state).shared_store is True
    assert Bot(inbox=inbox).shared_store is False  # the state would stay in each process
