"""Media: receive a picture, send one back.

Run it with `imbot dev examples/media.py` and attach an image on the chat page. The bot
tells you what it got and answers with a small PNG that it draws itself.
"""

import struct
import zlib

from imbot import Bot, Context, MessageReceived

bot = Bot()


def square_png(size: int, rgb: tuple[int, int, int]) -> bytes:
    """A `size` x `size` PNG of one color: just enough of the format, no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size  # filter byte 0, then RGB pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


@bot.on_message(has_media=True)
async def got_media(ctx: Context[MessageReceived]) -> None:
    assert ctx.message is not None and ctx.message.media  # has_media=True guarantees it
    item = ctx.message.media[0]
    await ctx.reply(f"Got your {item.content_type or 'file'} ({item.size} bytes): {item.url}")
    # ctx.upload returns a MediaUpload, reusable for several sends.
    png = await ctx.upload(square_png(32, (255, 64, 129)), filename="square.png")
    await ctx.reply("Here's one back.", media=png)


@bot.on_message()
async def no_media(ctx: Context[MessageReceived]) -> None:
    await ctx.reply("Send me a picture and I'll send one back.")
