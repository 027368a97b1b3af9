"""``imbot setup``: connect an Inkbox identity to a bot's public webhook URL.

Turns iMessage on for the identity, creates or updates its webhook subscription for the five
iMessage events, keeps the signing key in a private file (mode 0600, never printed unless
asked), and tells the developer the router number humans text.

The signing key is shown by Inkbox only once. When the subscription already existed (so no
key came back) and no key is saved locally, ``setup`` rotates the key and saves the new one;
bots still running with the old key must be restarted with the new one.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

import anyio

from imbot.cli._common import Subparsers, fail, guard
from imbot.config import resolve_bot_settings
from imbot.errors import NotFound, SetupError

if TYPE_CHECKING:
    from imbot.client.client import InkboxClient

__all__ = ["SetupOptions", "add_parser", "read_secret", "run", "run_setup", "save_secret"]

DEFAULT_KEY_FILE = Path(".imbot") / "signing-key"
"""Where ``imbot setup`` keeps the signing key unless told otherwise."""


@dataclass(frozen=True, slots=True)
class SetupOptions:
    """What ``imbot setup`` was asked to do.

    Attributes:
        url: the bot's public webhook URL.
        handle: the agent handle (``--handle``, else ``IMBOT_HANDLE``); ``None`` for the API
            key's only identity.
        key_file: where to keep the signing key.
        print_key: also print the signing key.
        rotate: make a new signing key even when one is saved.
    """

    url: str
    handle: str | None = None
    key_file: Path = DEFAULT_KEY_FILE
    print_key: bool = False
    rotate: bool = False


def add_parser(subparsers: Subparsers) -> None:
    """Register ``imbot setup`` and its options."""
    parser = subparsers.add_parser(
        "setup",
        help="connect an Inkbox identity to your bot's public webhook URL",
        description="Against the Inkbox API in the environment (INKBOX_API_KEY, "
        "INKBOX_BASE_URL): enable iMessage on the identity, create or update its webhook "
        "subscription for the five iMessage events, and save the signing key to a private "
        "file. If the identity already had a key that is not saved here, the key is rotated.",
    )
    parser.add_argument(
        "--url",
        required=True,
        help="the bot's public webhook URL, e.g. https://bot.example/webhook",
    )
    parser.add_argument(
        "--handle",
        default=None,
        help="the agent handle (default: $IMBOT_HANDLE, else the API key's only identity)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=DEFAULT_KEY_FILE,
        help="where to save the signing key, mode 0600 (default: %(default)s)",
    )
    parser.add_argument(
        "--print-signing-key",
        action="store_true",
        help="also print the signing key (it is never printed otherwise)",
    )
    parser.add_argument(
        "--rotate-signing-key",
        action="store_true",
        help="make a new signing key even if one is saved (running bots need the new one)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``imbot setup`` with the parsed arguments; return the exit code."""
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return fail("setup", f"--url must be an https:// URL, not {args.url!r}")
    options = SetupOptions(
        url=args.url,
        handle=resolve_bot_settings(handle=args.handle).handle,
        key_file=args.key_file,
        print_key=args.print_signing_key,
        rotate=args.rotate_signing_key,
    )
    return guard("setup", lambda: anyio.run(run_setup, options))


def save_secret(path: Path, value: str) -> None:
    """Write a secret to ``path`` readable by the owner only (mode 0600), atomically.

    A folder created for it gets a ``.gitignore`` of ``*``, so the secret is never committed.
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        (folder / ".gitignore").write_text("*\n", encoding="utf-8")
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def read_secret(path: Path) -> str | None:
    """The secret saved at ``path``, or ``None`` when there is none."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


async def _pick_handle(client: InkboxClient, given: str | None) -> str:
    if given:
        return given.removeprefix("@")
    identities = await client.list_identities()
    if len(identities) == 1:
        return identities[0].agent_handle
    if not identities:
        raise SetupError("this API key sees no agent identity; create one, then pass --handle")
    names = ", ".join(f"@{i.agent_handle}" for i in identities[:10])
    raise SetupError(f"this API key sees several identities ({names}); pass --handle NAME")


def _line(out: TextIO, label: str, value: str) -> None:
    print(f"  {label + ':':<14}{value}", file=out)


async def run_setup(options: SetupOptions, *, out: TextIO | None = None) -> None:
    """Do the set-up against the API in the environment (``INKBOX_API_KEY``, ...).

    Args:
        options: the parsed command line.
        out: where the report goes; ``sys.stdout`` by default.

    Raises:
        ConfigError: no API key, or an invalid base URL.
        SetupError: the handle is unknown or ambiguous.
        InkboxError: the API refused a step.
        TransportError: the API could not be reached.
    """
    from imbot.cli.provision import ensure_identity, ensure_subscription
    from imbot.client.client import InkboxClient

    stream = sys.stdout if out is None else out
    # One retry is enough for a one-off command; an unreachable API fails fast.
    async with InkboxClient(max_attempts=2, timeout=20.0) as client:
        handle = await _pick_handle(client, options.handle)
        try:
            identity, identity_action = await ensure_identity(client, handle, create=False)
        except NotFound:
            raise SetupError(
                f"unknown handle @{handle}: no identity with that handle is visible to this "
                "API key; check --handle (or IMBOT_HANDLE), or create the identity first"
            ) from None
        subscribed = await ensure_subscription(client, identity, options.url)
        saved = read_secret(options.key_file)
        key_note: str
        key = subscribed.signing_key
        if key is not None:
            key_note = "new key (the identity's first)"
        elif options.rotate or saved is None:
            key = (await client.create_signing_key(handle)).signing_key
            key_note = (
                "rotated (--rotate-signing-key)"
                if options.rotate
                else "rotated: the identity had a key, but it is not saved here"
            )
        else:
            key_note = "kept the saved key"
        if key is not None:
            save_secret(options.key_file, key)
        try:
            triage = await client.get_triage_number()
            router: str | None = triage.number
        except NotFound:
            router = None

    sub = subscribed.subscription
    print(f"imbot setup: @{handle} is ready", file=stream)
    _line(stream, "iMessage", "enabled" + (" (was off)" if identity_action == "enabled" else ""))
    detail = {
        "created": "created",
        "updated": "updated: all five iMessage events",
        "moved": f"moved from {subscribed.previous_url}",
        "unchanged": "already set up",
    }[subscribed.action]
    _line(stream, "Webhook", f"{sub.url}  ({detail}; subscription {sub.id})")
    _line(stream, "Signing key", f"{options.key_file} (mode 600) — {key_note}")
    if key is not None and saved is not None and key != saved:
        print(
            "  note: the signing key changed; restart running bots with the new key "
            "(IMBOT_SIGNING_KEY accepts old,new while you roll over)",
            file=stream,
        )
    for other in subscribed.others:
        print(
            f"  note: subscription {other.id} also sends iMessage events to {other.url}; "
            "delete it if no bot listens there",
            file=stream,
        )
    if router is not None:
        _line(stream, "Humans text", f"connect @{handle}  to  {router}")
    else:
        _line(stream, "Humans text", f"connect @{handle}  (no router number is active yet)")
    print("Run the bot with:", file=stream)
    print(
        f'  IMBOT_HANDLE={handle} IMBOT_SIGNING_KEY="$(cat {options.key_file})" '
        "imbot run app.py --port 8000",
        file=stream,
    )
    if options.print_key:
        print(f"Signing key: {key or saved}", file=stream)
