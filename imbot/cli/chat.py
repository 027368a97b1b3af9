"""``imbot chat``: play the human in a terminal, against a running simulator.

Lines read from standard input are texted from your phone number through ``/sim/v1``; the
phone's event stream is printed as it comes: the agent's messages, the typing bubble,
Delivered and Read on your messages, and tapbacks. Standard input need not be a terminal,
so a script (or a test) can pipe a conversation in.

The HTTP client, the models and the thread portal are imported when the chat starts, not
with the parser, which every ``imbot`` command builds.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import anyio

from imbot.cli._common import Subparsers, guard
from imbot.errors import ChatError, single_exception

if TYPE_CHECKING:
    import anyio.abc
    from anyio.from_thread import BlockingPortal

__all__ = ["ChatError", "ChatOptions", "Transcript", "add_parser", "run", "run_chat"]

DEFAULT_PHONE = "+15551234567"
"""The number ``imbot chat`` texts from unless ``--phone`` says otherwise."""

_CONNECT = re.compile(r"^\s*connect\s+@?(\S+)\s*$", re.IGNORECASE)

_VERBS = {
    "love": "loved",
    "like": "liked",
    "dislike": "disliked",
    "laugh": "laughed at",
    "emphasize": "emphasized",
    "question": "questioned",
    "eyes": "reacted 👀 to",
}


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What ``imbot chat`` was asked to do.

    Attributes:
        url: the simulator's origin.
        phone: your phone number (E.164).
        to: the handle to text (``None``: the most recent conversation).
        linger: when input ends, keep printing until nothing arrived for this long (s).
    """

    url: str = "http://127.0.0.1:8787"
    phone: str = DEFAULT_PHONE
    to: str | None = None
    linger: float = 2.0


def add_parser(subparsers: Subparsers) -> None:
    """Register ``imbot chat`` and its options."""
    parser = subparsers.add_parser(
        "chat",
        help="chat with a bot from the terminal, as the human",
        description="Text a bot running in the simulator: each line you type is sent from "
        "your phone number; the bot's replies, typing, Delivered/Read and tapbacks are "
        "printed as they happen. Reads standard input, so it also works in a pipe.",
    )
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8787",
        help="the simulator's address (default: %(default)s)",
    )
    parser.add_argument(
        "--phone", default=DEFAULT_PHONE, help="your phone number, E.164 (default: %(default)s)"
    )
    parser.add_argument(
        "--to",
        default=None,
        metavar="HANDLE",
        help="the agent to text (default: your most recent conversation)",
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=None,
        metavar="SECONDS",
        help="when input ends, wait until nothing arrived for this long (default: 2, or 0.5 "
        "in a terminal)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``imbot chat`` with the parsed arguments; return the exit code."""
    linger = args.linger
    if linger is None:
        linger = 0.5 if sys.stdin.isatty() else 2.0
    options = ChatOptions(
        url=args.url.rstrip("/"),
        phone=args.phone.strip(),
        to=args.to.removeprefix("@") if args.to else None,
        linger=linger,
    )
    return guard("chat", lambda: run_chat(options))


def _quote(text: str | None, limit: int = 40) -> str:
    if not text:
        return "your message"
    flat = " ".join(text.split())
    return f"“{flat[: limit - 1]}…”" if len(flat) > limit else f"“{flat}”"


@dataclass
class Transcript:
    """Turns the phone's events into printed lines, each said once.

    Example:
        >>> t = Transcript(print)
        >>> t.typing({"thread": "echo", "typing": True})
        … @echo is typing
    """

    emit: Callable[[str], None]
    _status: dict[str, str] = field(default_factory=dict)
    _reactions: set[str] = field(default_factory=set)
    _typing: dict[str, bool] = field(default_factory=dict)
    _threads: dict[str, str | None] = field(default_factory=dict)

    @staticmethod
    def _who(thread: str) -> str:
        return "router" if thread == "router" else f"@{thread}"

    def item(self, item: dict[str, Any]) -> None:
        """A new or changed timeline item: a message, its status, its tapbacks."""
        item_id = str(item.get("id"))
        thread = str(item.get("thread") or "router")
        mine = item.get("from") == "me"
        status = str(item.get("status") or "")
        before = self._status.get(item_id)
        self._status[item_id] = status
        if not mine and before is None:
            self._typing[thread] = False
            parts = [item["text"]] if item.get("text") else []
            for media in item.get("media") or []:
                parts.append(f"[{media.get('content_type', 'file')}: {media.get('url')}]")
            prefix = f"{self._who(thread)}: "
            body = " ".join(parts) or "(empty message)"
            self.emit(prefix + body.replace("\n", "\n" + " " * len(prefix)))
        elif mine and status != before:
            label = {"delivered": "✓ Delivered", "read": "✓ Read", "failed": "✗ Not delivered"}
            if status in label:
                self.emit(f"  {label[status]}: {_quote(item.get('text'))}")
        for reaction in item.get("reactions") or []:
            reaction_id = str(reaction.get("id"))
            if reaction_id in self._reactions:
                continue
            self._reactions.add(reaction_id)
            if reaction.get("from") == "me":
                continue
            kind = str(reaction.get("reaction"))
            verb = _VERBS.get(kind) or f"reacted {reaction.get('custom_emoji') or kind} to"
            who = self._who(thread)
            # Your "connect @h" text sits in the router thread, but @h is the one reacting.
            connect = _CONNECT.match(str(item.get("text") or "")) if thread == "router" else None
            if connect is not None:
                who = f"@{connect.group(1)}"
            self.emit(f"{who} {verb} {_quote(item.get('text'))}")

    def typing(self, data: dict[str, Any]) -> None:
        """The typing bubble appeared or went away."""
        thread = str(data.get("thread") or "")
        now = bool(data.get("typing"))
        if now and not self._typing.get(thread):
            self.emit(f"… {self._who(thread)} is typing")
        self._typing[thread] = now

    def thread(self, data: dict[str, Any]) -> None:
        """A conversation started, or was released."""
        name = str(data.get("thread") or "")
        status = data.get("status")
        if name == "router" or self._threads.get(name) == status:
            return
        self._threads[name] = status
        if status == "active":
            self.emit(f"— connected to @{name}")
        elif status == "released":
            self.emit(f"— @{name} ended the conversation")

    def seen(self, item: dict[str, Any]) -> None:
        """Remember an earlier item without printing it, so only its changes are shown."""
        self._status[str(item.get("id"))] = str(item.get("status") or "")
        for reaction in item.get("reactions") or []:
            self._reactions.add(str(reaction.get("id")))

    def seen_thread(self, thread: dict[str, Any]) -> None:
        """Remember an earlier conversation's state without printing it."""
        self._threads[str(thread.get("thread"))] = thread.get("status")


def _read_lines(portal: BlockingPortal, send: anyio.abc.ObjectSendStream[str]) -> None:
    """Read standard input in a daemon thread (a blocked read must not hold up exit)."""
    try:
        for line in sys.stdin:
            portal.call(send.send, line.rstrip("\r\n"))
        portal.call(send.aclose)
    except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return  # the chat ended first


async def _events(
    session: Any,
    options: ChatOptions,
    transcript: Transcript,
    ready: anyio.Event,
    activity: list[float],
) -> None:
    import json

    import aiohttp

    url = f"{options.url}/sim/v1/phones/{options.phone}/events"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with session.get(url, timeout=timeout) as response:
        if response.status != 200:
            raise ChatError(f"the simulator refused the event stream ({response.status})")
        name, data = "message", []
        async for raw in response.content:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line:
                payload = json.loads("\n".join(data)) if data else {}
                activity[0] = anyio.current_time()
                if name == "ready":
                    ready.set()
                elif name == "item":
                    transcript.item(payload)
                elif name == "typing":
                    transcript.typing(payload)
                elif name == "thread":
                    transcript.thread(payload)
                name, data = "message", []
    raise ChatError("the simulator closed the event stream (did it stop?)")


async def _chat(options: ChatOptions, out: IO[str]) -> None:
    import aiohttp
    from anyio.from_thread import BlockingPortal

    def emit(line: str) -> None:
        print(line, file=out, flush=True)

    transcript = Transcript(emit)
    base = options.url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(f"{base}/sim/v1/info") as response:
                info = await response.json() if response.status == 200 else None
            async with session.get(f"{base}/sim/v1/phones/{options.phone}/timeline") as response:
                timeline = await response.json() if response.status == 200 else {}
        except (aiohttp.ClientError, OSError) as exc:
            raise ChatError(
                f"cannot reach the simulator at {base} ({exc.__class__.__name__}); start it "
                "with `imbot dev app.py` (or `imbot sim`), or pass --url"
            ) from None
        if not isinstance(info, dict) or "router_number" not in info:
            raise ChatError(f"{base} does not look like the imbot simulator (no /sim/v1/info)")
        for item in timeline.get("items", []):
            transcript.seen(item)
        for thread in timeline.get("threads", []):
            transcript.seen_thread(thread)
        ready = anyio.Event()
        activity = [anyio.current_time()]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_events, session, options, transcript, ready, activity)
            with anyio.fail_after(10):
                await ready.wait()
            _greet(emit, options, info, timeline)
            send, receive = anyio.create_memory_object_stream[str](16)
            async with BlockingPortal() as portal:
                reader = threading.Thread(
                    target=_read_lines, args=(portal, send), name="imbot-chat-stdin", daemon=True
                )
                reader.start()
                async with receive:
                    async for line in receive:
                        if line.strip():
                            await _text(session, base, options, line, transcript)
                # Input ended: let the last replies arrive, until things go quiet.
                activity[0] = anyio.current_time()
                while True:
                    quiet_for = anyio.current_time() - activity[0]
                    if quiet_for >= options.linger:
                        break
                    await anyio.sleep(options.linger - quiet_for)
                tg.cancel_scope.cancel()


def _greet(
    emit: Callable[[str], None],
    options: ChatOptions,
    info: dict[str, Any],
    timeline: dict[str, Any],
) -> None:
    handles = [f"@{h}" for h in info.get("handles", [])]
    emit(
        f"imbot chat: you are {options.phone} on {options.url} "
        f"(router {info['router_number']}; agents: {', '.join(handles) or 'none yet'})"
    )
    connected = [t for t in timeline.get("threads", []) if t.get("status") == "active"]
    if connected:
        names = ", ".join(f"@{t['thread']}" for t in connected)
        emit(f"Connected to {names}. Type a message and press Enter; Ctrl-D quits.")
    else:
        first = handles[0] if handles else "@handle"
        emit(f"Type `connect {first}` to start; Ctrl-D quits.")


async def _text(
    session: Any, base: str, options: ChatOptions, line: str, transcript: Transcript
) -> None:
    # The new item itself comes back on the event stream (first as "Delivered").
    url = f"{base}/sim/v1/phones/{options.phone}/messages"
    async with session.post(url, json={"text": line, "to": options.to}) as response:
        body = await response.json(content_type=None)
    if response.status != 201:
        detail = body.get("detail") if isinstance(body, dict) else body
        transcript.emit(f"  ✗ not sent ({response.status}): {detail}")


def run_chat(options: ChatOptions, out: IO[str] | None = None) -> None:
    """Chat until standard input ends (then linger for replies) or Ctrl-C.

    Args:
        options: the parsed command line.
        out: where the conversation is printed; ``sys.stdout`` by default.

    Raises:
        ChatError: the phone number is invalid or the simulator cannot be reached.
    """
    from imbot.models import is_e164

    if not is_e164(options.phone):
        raise ChatError(
            f"--phone must be an E.164 number like {DEFAULT_PHONE}, not {options.phone!r}"
        )
    try:
        anyio.run(_chat, options, sys.stdout if out is None else out)
    except BaseExceptionGroup as group:
        raise (single_exception(group) or group) from None
