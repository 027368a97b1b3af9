"""examples/media.py, through the test kit."""

from __future__ import annotations

import aiohttp
import pytest
from support import load_example

from imbot import Bot
from imbot.testing import BotHarness, Conversation, tiny_png


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("media").bot
    return bot


async def test_describes_the_image_and_sends_a_png_back(
    imbot_harness: BotHarness, imbot_chat: Conversation
) -> None:
    png = tiny_png()
    await imbot_chat.say(media=png, content_type="image/png", filename="dot.png")
    about = await imbot_chat.expect_reply(regex=rf"^Got your image/png \({len(png)} bytes\): ")
    assert about.text is not None and about.text.endswith("/dot.png")
    reply = await imbot_chat.expect_reply("Here's one back.", media="image/png")

    async with aiohttp.ClientSession() as http, http.get(reply.media[0].url) as response:
        assert response.status == 200
        body = await response.read()
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    assert body[12:16] == b"IHDR" and body[16:24] == (32).to_bytes(4, "big") * 2
    assert imbot_harness.base_url in reply.media[0].url


async def test_asks_for_a_picture_when_there_is_none(imbot_chat: Conversation) -> None:
    await imbot_chat.say("hello")
    await imbot_chat.expect_reply("Send me a picture and I'll send one back.", media=False)


def test_square_png_is_a_valid_png() -> None:
    png = load_example("media").square_png(2, (1, 2, 3))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")
