"""InkboxClient: normal answers from the real simulator, faults from a scripted server.

Everything a real service answers on demand runs against the simulator (``imbot_simulator``,
from ``imbot.testing``'s pytest plugin); a recording transport in front of it (``wire``) shows
exactly what the client sent. The scripted server in ``inkbox_stub`` serves only what no real
server does on demand: error statuses and bodies of every documented shape, a ``5xx`` then a
``2xx``, ``Retry-After``, a body cut off, an answer that never comes, and the server's view of
the connection. ``MockTransport`` raises the resets no server can be made to send.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import re
import socket
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
import pytest
import structlog
from support.inkbox_stub import InkboxStub, Reply

from imbot import __version__
from imbot.client.client import InkboxClient
from imbot.client.transport import AiohttpTransport, MockTransport, Request, Response
from imbot.config import Settings
from imbot.errors import (
    BadRequest,
    ConfigError,
    ConnectError,
    ConversationReleased,
    DuplicateContactRule,
    Forbidden,
    IdempotencyKeyReused,
    InkboxError,
    InvalidRequest,
    MediaTooLarge,
    NotConnected,
    NotFound,
    NotMessagedYet,
    PayloadTooLarge,
    RateLimited,
    RecipientBlocked,
    RecipientNotE164,
    ServerError,
    SetupError,
    TransportError,
    Unauthorized,
    Unprocessable,
)
from imbot.log import redact_text
from imbot.models import (
    Assignment,
    ContactRule,
    Conversation,
    ConversationSummary,
    Direction,
    Identity,
    MarkReadResult,
    Message,
    Reaction,
    SendMessage,
    SigningKey,
    SigningKeyStatus,
    TapbackKind,
    WebhookSubscription,
)
from imbot.sim import Simulator

EXAMPLES_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "wire_examples.json"
_DATA = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
EX: dict[str, Any] = {**_DATA["examples"], **_DATA["constructed"]}

KEY = "ApiKey_test_0123456789"
CID = EX["message"]["conversation_id"]
MSG = "/api/v1/imessage/messages"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MiB = 1024 * 1024
HANDLE = "my-agent"
PHONE = "+15555550142"


# --- the simulator, and what the client hands its transport -----------------------------------


@dataclass(frozen=True)
class Sent:
    """One request the client handed to its transport, taken apart for assertions."""

    request: Request

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        # Still percent-encoded: the tests check how the client quoted ids.
        return urlsplit(self.request.url).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.request.url).query, keep_blank_values=True))

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers

    @property
    def body(self) -> bytes:
        return self.request.body or b""

    def json(self) -> Any:
        return json.loads(self.body)


class Recording:
    """The real aiohttp transport, keeping a list of every request the client sent through it."""

    def __init__(self) -> None:
        self.requests: list[Sent] = []
        self._real = AiohttpTransport()

    async def send(self, request: Request) -> Response:
        self.requests.append(Sent(request))
        return await self._real.send(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@pytest.fixture
def sim(imbot_simulator: Simulator) -> Simulator:
    return imbot_simulator


@pytest.fixture
async def wire() -> AsyncIterator[Recording]:
    recording = Recording()
    yield recording
    await recording.aclose()


@pytest.fixture
async def client(sim: Simulator, wire: Recording) -> AsyncIterator[InkboxClient]:
    """An admin client on the simulator, sending through ``wire``."""
    async with InkboxClient(api_key=sim.admin_key, base_url=sim.base_url, transport=wire) as c:
        yield c


async def human_texts(sim: Simulator, number: str, text: str, *, to: str | None = None) -> None:
    """The human at ``number`` texts (the router number unless ``to`` names a handle)."""
    body = {"text": text} if to is None else {"text": text, "to": to}
    url = f"{sim.base_url}/sim/v1/phones/{number}/messages"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 201, await resp.text()


async def connect(sim: Simulator, client: InkboxClient, number: str = PHONE) -> str:
    """``number`` connects to @my-agent and says hello; return the conversation id."""
    await human_texts(sim, number, f"connect @{HANDLE}")
    await human_texts(sim, number, "hello", to=HANDLE)
    (convo,) = [c for c in await client.list_conversations() if c.remote_number == number]
    return convo.id


@dataclass(frozen=True)
class World:
    """One of everything the endpoints act on, made on the simulator through the client."""

    identity: Identity
    conversation_id: str
    inbound: Message
    assignment: Assignment
    reaction: Reaction
    rule: ContactRule
    subscription: WebhookSubscription


@pytest.fixture
async def world(sim: Simulator, client: InkboxClient, wire: Recording) -> World:
    with anyio.fail_after(10):
        identity = await client.create_identity(HANDLE, imessage_enabled=True)
        conversation_id = await connect(sim, client)
        messages = await client.list_messages(conversation_id=conversation_id)
        inbound = next(m for m in messages if m.direction is Direction.INBOUND)
        (assignment,) = await client.list_assignments()
        reaction = await client.send_reaction(inbound.id, "like")
        rule = await client.create_contact_rule(HANDLE, action="block", match_target="+15555550198")
        # A closed loopback port and an event nothing here causes: no delivery leaves the test.
        subscription = await client.create_subscription(
            agent_identity_id=identity.id,
            url="http://127.0.0.1:9/hook",
            event_types=["imessage.delivery_failed"],
        )
    wire.requests.clear()
    return World(identity, conversation_id, inbound, assignment, reaction, rule, subscription)


# --- headers, settings, lifecycle -------------------------------------------------------------


async def test_every_request_carries_auth_accept_and_user_agent(
    sim: Simulator, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(5):
        triage = await client.get_triage_number()
    assert triage.number == sim.triage_number
    assert triage.connect_command.startswith("connect")
    (req,) = wire.requests
    assert req.headers["X-API-Key"] == sim.admin_key
    assert req.headers["Accept"] == "application/json"
    assert req.headers["User-Agent"] == f"imbot/{__version__}"
    assert "Idempotency-Key" not in req.headers
    assert "Prefer" not in req.headers
    assert req.body == b""


async def test_user_agent_prefix(sim: Simulator, wire: Recording) -> None:
    with anyio.fail_after(5):
        async with InkboxClient(
            api_key=sim.admin_key, base_url=sim.base_url, transport=wire, user_agent="mybot/2.0"
        ) as c:
            await c.get_triage_number()
    assert wire.requests[0].headers["User-Agent"] == f"mybot/2.0 imbot/{__version__}"


async def test_settings_come_from_env(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, wire: Recording
) -> None:
    monkeypatch.setenv("INKBOX_API_KEY", sim.admin_key)
    monkeypatch.setenv("INKBOX_BASE_URL", sim.base_url + "/")
    with anyio.fail_after(5):
        async with InkboxClient(transport=wire) as c:
            assert c.base_url == sim.base_url
            await c.get_triage_number()  # a wrong key would be Unauthorized
    assert wire.requests[0].headers["X-API-Key"] == sim.admin_key


async def test_client_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="INKBOX_API_KEY"):
        InkboxClient()


async def test_the_key_and_every_other_argument_are_keyword_only(sim: Simulator) -> None:
    with pytest.raises(TypeError, match="positional"):
        InkboxClient(sim.admin_key, sim.base_url)  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        InkboxClient(sim.admin_key)  # type: ignore[misc]


async def test_settings_object(sim: Simulator) -> None:
    settings = Settings(api_key=KEY, base_url=sim.base_url)
    async with InkboxClient(settings=settings) as c:
        assert c.settings is settings
        assert c.base_url == sim.base_url
    with pytest.raises(ConfigError, match="not both"):
        InkboxClient(api_key=KEY, settings=settings)


async def test_closed_client_refuses_requests(sim: Simulator, wire: Recording) -> None:
    c = InkboxClient(api_key=sim.admin_key, base_url=sim.base_url, transport=wire)
    await c.aclose()
    with pytest.raises(SetupError, match="closed"):
        await c.get_triage_number()
    with pytest.raises(SetupError, match="closed"):
        async with c:
            pass
    await c.aclose()  # closing twice is harmless
    assert wire.requests == []


async def test_clean_close_leaves_no_unclosed_session(sim: Simulator) -> None:
    def unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
        return [str(w.message) for w in caught if "Unclosed" in str(w.message)]

    with anyio.fail_after(5):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c = InkboxClient(api_key=sim.admin_key, base_url=sim.base_url)
            await c.get_triage_number()
            await c.aclose()
            del c
            gc.collect()
        assert unclosed(caught) == []
        # The check can fail: a session dropped without closing does warn.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = aiohttp.ClientSession()
            connector = session.connector
            del session
            gc.collect()
        assert unclosed(caught) != []
        assert connector is not None
        await connector.close()


async def test_a_passed_transport_stays_open(sim: Simulator, wire: Recording) -> None:
    url = sim.base_url + "/api/v1/imessage/triage-number"
    with anyio.fail_after(5):
        async with InkboxClient(api_key=sim.admin_key, base_url=sim.base_url, transport=wire) as c:
            await c.get_triage_number()
        (call,) = wire.requests
        assert call.request.url == url
        assert call.request.timeout == 30.0
        # The client is closed; the transport it was given still sends.
        response = await wire.send(Request("GET", url, {"X-API-Key": sim.admin_key}))
    assert response.status == 200


# --- sends and local validation ---------------------------------------------------------------


async def test_send_message_body_headers_and_parse(
    world: World, wire: Recording, client: InkboxClient
) -> None:
    text = "Friday 3pm works — booked."
    with anyio.fail_after(5):
        message = await client.send_message(
            conversation_id=world.conversation_id, text=text, send_style="confetti"
        )
    assert isinstance(message, Message)
    assert (message.conversation_id, message.content) == (world.conversation_id, text)
    assert message.direction is Direction.OUTBOUND
    (req,) = wire.requests
    assert req.json() == {
        "conversation_id": world.conversation_id,
        "text": text,
        "send_style": "confetti",
    }
    assert req.headers["Content-Type"] == "application/json"
    assert UUID4.match(req.headers["Idempotency-Key"])
    assert req.headers["Prefer"] == "idempotency-replay"
    assert not req.query


async def test_send_by_number_passes_the_identity(
    world: World, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(5):
        upload = await client.upload_media(b"\x89PNG\r\n\x1a\n", filename="a.png")
        wire.requests.clear()
        message = await client.send_message(
            to=PHONE,
            media_urls=[upload.media_url],
            agent_identity_id=world.identity.id,
            idempotency_key="reply-evt_1-0",
        )
    assert message.conversation_id == world.conversation_id
    (req,) = wire.requests
    assert req.json() == {"to": PHONE, "media_urls": [upload.media_url]}
    assert req.query == {"agent_identity_id": world.identity.id}
    assert req.headers["Idempotency-Key"] == "reply-evt_1-0"


async def test_each_send_gets_its_own_key(
    world: World, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(5):
        one = await client.send_message(conversation_id=world.conversation_id, text="one")
        two = await client.send_message(conversation_id=world.conversation_id, text="two")
    assert one.id != two.id
    keys = {r.headers["Idempotency-Key"] for r in wire.requests}
    assert len(keys) == 2


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"to": "5555550142", "text": "x"}, "E.164"),
        ({"to": "+05555550142", "text": "x"}, "E.164"),
        ({"conversation_id": CID, "to": "+15555550142", "text": "x"}, "exactly one"),
        ({"text": "x"}, "exactly one"),
        ({"conversation_id": CID}, "text or a media URL"),
        ({"conversation_id": CID, "text": "   "}, "text or a media URL"),
        ({"conversation_id": CID, "media_urls": ["a", "b"]}, "media_urls"),
        ({"conversation_id": CID, "text": "x" * 18_997}, "text"),
        ({"conversation_id": CID, "text": "\ud800 lone surrogate"}, "text"),
        ({"conversation_id": CID, "text": 42}, "text"),
        ({"conversation_id": 42, "text": "x"}, "conversation_id"),
        ({"conversation_id": CID, "text": "x", "send_style": "wobble"}, "send_style"),
        ({"to": "+15555550142", "text": "x", "reply_to_message_id": CID}, "reply_to_message_id"),
        ({"conversation_id": CID, "text": "x", "idempotency_key": " "}, "idempotency_key"),
        ({"conversation_id": CID, "text": "x", "idempotency_key": "k" * 256}, "idempotency_key"),
        ({"conversation_id": CID, "text": "x", "idempotency_key": "clé"}, "idempotency_key"),
    ],
)
async def test_invalid_sends_are_refused_before_any_request(
    wire: Recording, client: InkboxClient, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        await client.send_message(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    assert wire.requests == []


@pytest.mark.parametrize(
    "text", ["Friday 3pm works — booked.", '😀 \u2028 "q" \\ \n\t\x00 </script>', "x" * 18_995]
)
async def test_a_text_reply_is_sent_exactly_as_the_request_model_dumps_it(
    world: World, wire: Recording, client: InkboxClient, text: str
) -> None:
    cid = world.conversation_id
    with anyio.fail_after(5):
        message = await client.send_message(conversation_id=cid, text=text, idempotency_key="k-1")
    assert message.content == text
    (req,) = wire.requests
    expected = SendMessage(conversation_id=cid, text=text).model_dump_json(exclude_none=True)
    assert req.body == expected.encode()


async def test_find_send_returns_what_a_key_sent_and_none_for_an_unused_key(
    world: World, wire: Recording, client: InkboxClient
) -> None:
    cid, ident = world.conversation_id, world.identity.id
    with anyio.fail_after(5):
        sent = await client.send_message(conversation_id=cid, text="first", idempotency_key="k-9")
        with pytest.raises(IdempotencyKeyReused):  # the same key, another text
            await client.send_message(conversation_id=cid, text="second", idempotency_key="k-9")
        wire.requests.clear()
        found = await client.find_send("k-9", agent_identity_id=ident)
        missing = await client.find_send("never-used", agent_identity_id=ident)
    assert found is not None and (found.id, found.content) == (sent.id, "first")
    assert missing is None
    lookup = wire.requests[0]
    assert (lookup.method, lookup.headers["Idempotency-Key"]) == ("GET", "k-9")
    assert lookup.path == "/api/v1/message-sends/lookup"
    assert lookup.query == {
        "sender_kind": "imessage_identity",
        "sender_id": ident,
        "operation": "imessage.send",
    }
    with pytest.raises(ValueError, match="idempotency_key"):
        await client.find_send(" ", agent_identity_id=ident)


async def test_invalid_request_lists_the_fields(client: InkboxClient) -> None:
    with pytest.raises(InvalidRequest) as info:
        await client.send_message(to="12", text="x")
    assert info.value.errors[0]["loc"] == "to"


async def test_send_reaction_accepts_the_enum(
    world: World, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(5):
        reaction = await client.send_reaction(world.inbound.id, TapbackKind.EYES)
    assert wire.requests[0].json() == {
        "message_id": world.inbound.id,
        "reaction": "eyes",
        "part_index": 0,
    }
    assert reaction.reaction is TapbackKind.EYES


# --- pagination -------------------------------------------------------------------------------


async def conversation_of(sim: Simulator, client: InkboxClient, rows: int) -> str:
    """A conversation holding exactly ``rows`` messages (the human's hello, then sends)."""
    await client.create_identity(HANDLE, imessage_enabled=True)
    cid = await connect(sim, client)
    have = len(await client.list_messages(conversation_id=cid, limit=200))
    assert have <= rows
    for n in range(rows - have):
        await client.send_message(conversation_id=cid, text=f"m{n}")
    return cid


def offsets(wire: Recording, path: str = MSG) -> list[tuple[int, int]]:
    return [
        (int(r.query["limit"]), int(r.query["offset"])) for r in wire.requests if r.path == path
    ]


async def test_iter_messages_walks_every_page(
    sim: Simulator, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(10):
        cid = await conversation_of(sim, client, rows=7)
        listed = [m.id for m in await client.list_messages(conversation_id=cid, limit=200)]
        wire.requests.clear()
        walked = [m.id async for m in client.iter_messages(conversation_id=cid, page_size=3)]
    assert walked == listed
    # After the first page, each page is the rows created at or before the last row seen,
    # past that row (see test_iter_messages_neither_repeats_nor_skips_...).
    assert offsets(wire) == [(3, 0), (3, 1), (3, 1)]
    bounds = [r.query.get("end_datetime") for r in wire.requests if r.path == MSG]
    by_id = {m.id: m for m in await client.list_messages(conversation_id=cid, limit=200)}
    assert bounds[0] is None
    assert bounds[1:] == [
        by_id[walked[2]].created_at.isoformat(),
        by_id[walked[5]].created_at.isoformat(),
    ]
    assert all(r.query["conversation_id"] == cid for r in wire.requests)


async def test_iter_stops_after_an_empty_page_on_exact_multiples(
    sim: Simulator, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(10):
        await conversation_of(sim, client, rows=6)
        wire.requests.clear()
        seen = [m async for m in client.iter_messages(page_size=3)]
    assert len(seen) == len({m.id for m in seen}) == 6
    assert [offset for _, offset in offsets(wire)] == [0, 1, 1]  # the last page is empty


async def test_breaking_out_of_an_iterator_early(
    sim: Simulator, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(10):
        await conversation_of(sim, client, rows=6)
        newest = (await client.list_messages(limit=1))[0]
        wire.requests.clear()
        async for message in client.iter_messages(page_size=2):
            assert message.id == newest.id
            break
        # The client stays usable, and no page past the first was fetched.
        await client.list_messages(limit=1)
    assert [offset for _, offset in offsets(wire)] == [0, 0]


async def test_list_messages_sends_the_filters(
    world: World, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(5):
        page = await client.list_messages(
            agent_identity_id=world.identity.id,
            is_read=False,
            is_blocked=True,
            include_groups=True,
            start_datetime=date(2026, 6, 1),
            end_datetime=datetime(2026, 6, 9, 12, 0, tzinfo=UTC),
            tz="Europe/Paris",
            limit=10,
            offset=20,
        )
    assert page == []
    assert wire.requests[0].query == {
        "agent_identity_id": world.identity.id,
        "is_read": "false",
        "is_blocked": "true",
        "include_groups": "true",
        "start_datetime": "2026-06-01",
        "end_datetime": "2026-06-09T12:00:00+00:00",
        "tz": "Europe/Paris",
        "limit": "10",
        "offset": "20",
    }


async def test_iter_conversations_and_assignments(
    sim: Simulator, wire: Recording, client: InkboxClient
) -> None:
    with anyio.fail_after(10):
        await client.create_identity(HANDLE, imessage_enabled=True)
        for n in range(5):
            await connect(sim, client, f"+1555555020{n}")
        summaries = [c.id for c in await client.list_conversations(limit=200)]
        assignments = [a.id for a in await client.list_assignments(limit=200)]
        wire.requests.clear()
        convos = [c.id async for c in client.iter_conversations(include_groups=False, page_size=2)]
        links = [a.id async for a in client.iter_assignments(agent_identity_id=None, page_size=2)]
    assert len(summaries) == len(assignments) == 5
    assert convos == summaries
    assert links == assignments
    assert offsets(wire, "/api/v1/imessage/conversations") == [(2, 0), (2, 2), (2, 4)]
    assert offsets(wire, "/api/v1/imessage/assignments") == [(2, 0), (2, 2), (2, 4)]
    first = next(r for r in wire.requests if r.path == "/api/v1/imessage/conversations")
    assert first.query["include_groups"] == "false"


async def test_iter_contact_rules(wire: Recording, client: InkboxClient) -> None:
    with anyio.fail_after(10):
        await client.create_identity(HANDLE, imessage_enabled=True)
        rules = [
            (
                await client.create_contact_rule(
                    HANDLE, action="block", match_target=f"+155555503{n:02}"
                )
            ).id
            for n in range(4)
        ]
        listed = [r.id for r in await client.list_contact_rules(HANDLE)]
        wire.requests.clear()
        mine = [
            r.id async for r in client.iter_contact_rules("@my-agent", action="block", page_size=3)
        ]
        org = [r.id async for r in client.iter_all_contact_rules(direction="inbound", page_size=4)]
    assert sorted(listed) == sorted(rules)
    assert mine == org == listed
    first = wire.requests[0]
    assert first.path == "/api/v1/imessage/identities/my-agent/contact-rules"
    assert first.query["action"] == "block"
    assert offsets(wire, first.path) == [(3, 0), (3, 3)]
    org_calls = [r for r in wire.requests if r.path == "/api/v1/imessage/contact-rules"]
    assert org_calls[0].query["direction"] == "inbound"
    assert offsets(wire, "/api/v1/imessage/contact-rules") == [(4, 0), (4, 4)]


async def test_iter_messages_neither_repeats_nor_skips_when_messages_arrive_between_pages(
    sim: Simulator, wire: Recording, client: InkboxClient
) -> None:
    # New messages land at the head of the newest-first list; with plain offsets they pushed
    # the next page down, and it began with the rows of the page before.
    arrivals = {3: 5, 6: 2}  # after the 1st page five messages arrive, after the 2nd two
    with anyio.fail_after(10):
        cid = await conversation_of(sim, client, rows=8)
        existing = [m.id for m in await client.list_messages(conversation_id=cid, limit=200)]
        wire.requests.clear()
        walked: list[str] = []
        async for message in client.iter_messages(conversation_id=cid, page_size=3):
            walked.append(message.id)
            for n in range(arrivals.get(len(walked), 0)):
                await client.send_message(conversation_id=cid, text=f"late {len(walked)}.{n}")
        pages = [r for r in wire.requests if r.path == MSG and r.method == "GET"]
        now = [m.id for m in await client.list_messages(conversation_id=cid, limit=200)]
    assert len(now) == len(existing) + 7
    assert walked == existing  # each once, none skipped, in order; the late ones not in it
    assert len(pages) == 3  # 3 + 3 + 2 rows: no page fetched twice
    assert "end_datetime" not in pages[0].query
    assert all(r.query["end_datetime"] for r in pages[1:])


async def test_iter_messages_keeps_the_callers_end_bound(
    sim: Simulator, client: InkboxClient
) -> None:
    with anyio.fail_after(10):
        cid = await conversation_of(sim, client, rows=7)
        existing = await client.list_messages(conversation_id=cid, limit=200)
        cut = existing[2].created_at  # newest first: the 3rd newest and older ones match
        walked = [
            m.id
            async for m in client.iter_messages(
                conversation_id=cid, end_datetime=cut.replace(tzinfo=None), page_size=2
            )
        ]
    assert walked == [m.id for m in existing[2:]]


async def test_iter_assignments_do_not_repeat_when_humans_connect_between_pages(
    sim: Simulator, client: InkboxClient
) -> None:
    with anyio.fail_after(10):
        await client.create_identity(HANDLE, imessage_enabled=True)
        for n in range(5):
            await connect(sim, client, f"+1555555030{n}")
        existing = [a.id for a in await client.list_assignments(limit=200)]
        walked: list[str] = []
        async for assignment in client.iter_assignments(page_size=2):
            walked.append(assignment.id)
            if len(walked) == 2:
                for n in range(3):
                    await connect(sim, client, f"+1555555031{n}")
        seen_conversations: list[str] = []
        async for summary in client.iter_conversations(page_size=2):
            seen_conversations.append(summary.id)
            if len(seen_conversations) == 2:
                await connect(sim, client, "+15555550320")
    assert len(walked) == len(set(walked))
    assert set(existing) <= set(walked)
    assert len(seen_conversations) == len(set(seen_conversations))
    assert len(seen_conversations) >= len(existing) + 3


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (201, 0), (50, -1)])
async def test_page_bounds_are_checked_locally(
    wire: Recording, client: InkboxClient, limit: int, offset: int
) -> None:
    with pytest.raises(InvalidRequest):
        await client.list_messages(limit=limit, offset=offset)
    with pytest.raises(InvalidRequest):
        await client.list_conversations(limit=limit, offset=offset)
    assert wire.requests == []


async def test_iter_page_size_is_checked_at_once(client: InkboxClient) -> None:
    with pytest.raises(InvalidRequest):
        client.iter_messages(page_size=500)


# --- media ------------------------------------------------------------------------------------


def parse_multipart(req: Sent) -> tuple[str | None, str | None, str, bytes]:
    raw = b"Content-Type: " + req.headers["Content-Type"].encode() + b"\r\n\r\n" + req.body
    message = BytesParser(policy=HTTP).parsebytes(raw)
    (part,) = message.iter_parts()
    payload = part.get_payload(decode=True)
    return (
        part.get_param("name", header="content-disposition"),
        part.get_filename(),
        part.get_content_type(),
        payload,
    )


async def test_upload_bytes(wire: Recording, client: InkboxClient) -> None:
    content = bytes(range(256)) * 10
    with anyio.fail_after(5):
        upload = await client.upload_media(content, filename="pic.png")
    assert (upload.size, upload.content_type) == (len(content), "image/png")
    assert upload.media_url.startswith("http://127.0.0.1:")
    name, filename, ctype, payload = parse_multipart(wire.requests[0])
    assert (name, filename, ctype) == ("file", "pic.png", "image/png")
    assert payload == content
    assert "Idempotency-Key" not in wire.requests[0].headers


async def test_upload_path_and_file(wire: Recording, client: InkboxClient, tmp_path: Path) -> None:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.7 test")
    with anyio.fail_after(5):
        await client.upload_media(path)
        await client.upload_media(str(path), content_type="application/x-custom")
        with path.open("rb") as handle:
            await client.upload_media(handle)
        await client.upload_media(io.BytesIO(b"blob"))
        await client.upload_media(b"raw", filename='we"ird\nname.bin')
    parts = [parse_multipart(r) for r in wire.requests]
    assert [(p[1], p[2], p[3]) for p in parts] == [
        ("invoice.pdf", "application/pdf", b"%PDF-1.7 test"),
        ("invoice.pdf", "application/x-custom", b"%PDF-1.7 test"),
        ("invoice.pdf", "application/pdf", b"%PDF-1.7 test"),
        ("upload", "application/octet-stream", b"blob"),
        ("we%22ird%0Aname.bin", "application/octet-stream", b"raw"),
    ]


async def test_file_is_read_from_its_position(wire: Recording, client: InkboxClient) -> None:
    stream = io.BytesIO(b"headerBODY")
    stream.seek(6)
    with anyio.fail_after(5):
        upload = await client.upload_media(stream, filename="b.txt")
    assert upload.size == 4
    assert parse_multipart(wire.requests[0])[3] == b"BODY"


async def test_oversize_media_is_refused_before_any_upload(
    wire: Recording, client: InkboxClient, tmp_path: Path
) -> None:
    big = tmp_path / "big.mov"
    with big.open("wb") as handle:
        handle.truncate(10 * MiB + 1)  # sparse: no 10 MiB written to disk
    with anyio.fail_after(5):
        with pytest.raises(MediaTooLarge) as info:
            await client.upload_media(big)
        assert (info.value.size, info.value.limit) == (10 * MiB + 1, 10 * MiB)
        with pytest.raises(MediaTooLarge):
            await client.upload_media(b"\0" * (10 * MiB + 1))
        with pytest.raises(MediaTooLarge), big.open("rb") as handle:
            await client.upload_media(handle)
        with pytest.raises(MediaTooLarge):
            await client.upload_media(io.BytesIO(b"\0" * (10 * MiB + 5)))
        with pytest.raises(MediaTooLarge):
            await client.upload_media(memoryview(b"\0" * (10 * MiB + 1)))
    assert isinstance(info.value, ValueError)
    assert wire.requests == []


class Unseekable(io.RawIOBase):
    """A stream that cannot tell its size, like a pipe."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left)
        buffer[:n] = b"\1" * n
        self._left -= n
        return n


async def test_unseekable_stream_is_capped(wire: Recording, client: InkboxClient) -> None:
    with anyio.fail_after(10):
        with pytest.raises(MediaTooLarge):
            await client.upload_media(io.BufferedReader(Unseekable(10 * MiB + 1)))
        assert wire.requests == []
        await client.upload_media(io.BufferedReader(Unseekable(1000)))
    assert parse_multipart(wire.requests[0])[3] == b"\1" * 1000


async def test_exactly_ten_mib_is_uploaded(wire: Recording, client: InkboxClient) -> None:
    with anyio.fail_after(10):
        upload = await client.upload_media(b"\0" * (10 * MiB))
    assert upload.size == 10 * MiB
    assert len(parse_multipart(wire.requests[0])[3]) == 10 * MiB


# --- every endpoint: method, path, query and body sent; the answer's type ---------------------

Value = Any | Callable[[World], Any]


def resolve(value: Value, world: World) -> Any:
    return value(world) if callable(value) else value


@dataclass(frozen=True)
class Endpoint:
    """One endpoint call and what the client must send for it; ``{w...}`` fills from the world."""

    call: Callable[[InkboxClient, World], Awaitable[Any]]
    method: str
    path: str
    returns: type | list[type] | None
    query: Value = None
    body: Value = None


ENDPOINTS: dict[str, Endpoint] = {
    "get_message": Endpoint(
        lambda c, w: c.get_message(w.inbound.id),
        "GET",
        "/api/v1/imessage/messages/{w.inbound.id}",
        Message,
    ),
    "list_conversations": Endpoint(
        lambda c, w: c.list_conversations(agent_identity_id=w.identity.id, is_blocked=False),
        "GET",
        "/api/v1/imessage/conversations",
        [ConversationSummary],
        query=lambda w: {
            "agent_identity_id": w.identity.id,
            "is_blocked": "false",
            "limit": "50",
            "offset": "0",
        },
    ),
    "get_conversation": Endpoint(
        lambda c, w: c.get_conversation(w.conversation_id, agent_identity_id=w.identity.id),
        "GET",
        "/api/v1/imessage/conversations/{w.conversation_id}",
        Conversation,
        query=lambda w: {"agent_identity_id": w.identity.id},
    ),
    "list_assignments": Endpoint(
        lambda c, w: c.list_assignments(limit=5),
        "GET",
        "/api/v1/imessage/assignments",
        [Assignment],
        query={"limit": "5", "offset": "0"},
    ),
    "release_assignment": Endpoint(
        lambda c, w: c.release_assignment(w.assignment.id),
        "DELETE",
        "/api/v1/imessage/assignments/{w.assignment.id}",
        None,
    ),
    "mark_read": Endpoint(
        lambda c, w: c.mark_read(w.conversation_id),
        "POST",
        "/api/v1/imessage/mark-read",
        MarkReadResult,
        body=lambda w: {"conversation_id": w.conversation_id},
    ),
    "send_typing": Endpoint(
        lambda c, w: c.send_typing(w.conversation_id),
        "POST",
        "/api/v1/imessage/typing",
        None,
        body=lambda w: {"conversation_id": w.conversation_id},
    ),
    "send_reaction": Endpoint(
        lambda c, w: c.send_reaction(w.inbound.id, "love"),
        "POST",
        "/api/v1/imessage/reactions",
        Reaction,
        body=lambda w: {"message_id": w.inbound.id, "reaction": "love", "part_index": 0},
    ),
    "remove_reaction": Endpoint(
        lambda c, w: c.remove_reaction(w.reaction.id),
        "DELETE",
        "/api/v1/imessage/reactions/{w.reaction.id}",
        None,
    ),
    "list_contact_rules": Endpoint(
        lambda c, w: c.list_contact_rules("@my-agent", direction="both", limit=3, offset=6),
        "GET",
        "/api/v1/imessage/identities/my-agent/contact-rules",
        [ContactRule],
        query={"direction": "both", "limit": "3", "offset": "6"},
    ),
    "create_contact_rule": Endpoint(
        lambda c, w: c.create_contact_rule("my-agent", action="block", match_target="+15555550199"),
        "POST",
        "/api/v1/imessage/identities/my-agent/contact-rules",
        ContactRule,
        body={"action": "block", "match_target": "+15555550199", "match_type": "exact_number"},
    ),
    "get_contact_rule": Endpoint(
        lambda c, w: c.get_contact_rule("my-agent", w.rule.id),
        "GET",
        "/api/v1/imessage/identities/my-agent/contact-rules/{w.rule.id}",
        ContactRule,
    ),
    "update_contact_rule": Endpoint(
        lambda c, w: c.update_contact_rule(
            "my-agent", w.rule.id, action="allow", status="paused", direction="inbound"
        ),
        "PATCH",
        "/api/v1/imessage/identities/my-agent/contact-rules/{w.rule.id}",
        ContactRule,
        body={"action": "allow", "status": "paused", "direction": "inbound"},
    ),
    "delete_contact_rule": Endpoint(
        lambda c, w: c.delete_contact_rule("my-agent", w.rule.id),
        "DELETE",
        "/api/v1/imessage/identities/my-agent/contact-rules/{w.rule.id}",
        None,
    ),
    "list_all_contact_rules": Endpoint(
        lambda c, w: c.list_all_contact_rules(agent_identity_id=w.identity.id, action="block"),
        "GET",
        "/api/v1/imessage/contact-rules",
        [ContactRule],
        query=lambda w: {
            "agent_identity_id": w.identity.id,
            "action": "block",
            "limit": "50",
            "offset": "0",
        },
    ),
    "create_identity": Endpoint(
        lambda c, w: c.create_identity(
            "@other-agent", display_name="Other Agent", description="d", imessage_enabled=True
        ),
        "POST",
        "/api/v1/identities/",
        Identity,
        body={
            "agent_handle": "other-agent",
            "display_name": "Other Agent",
            "description": "d",
            "imessage_enabled": True,
        },
    ),
    "list_identities": Endpoint(
        lambda c, w: c.list_identities(), "GET", "/api/v1/identities/", [Identity]
    ),
    "get_identity": Endpoint(
        lambda c, w: c.get_identity("@my-agent"), "GET", "/api/v1/identities/my-agent", Identity
    ),
    "update_identity": Endpoint(
        lambda c, w: c.update_identity(
            "my-agent",
            imessage_enabled=True,
            filter_mode="whitelist",
            display_name="New",
            description="",
        ),
        "PATCH",
        "/api/v1/identities/my-agent",
        Identity,
        body={
            "imessage_enabled": True,
            "imessage_filter_mode": "whitelist",
            "display_name": "New",
            "description": "",
        },
    ),
    "create_signing_key": Endpoint(
        lambda c, w: c.create_signing_key("my-agent"),
        "POST",
        "/api/v1/identities/my-agent/signing-key",
        SigningKey,
        body={},
    ),
    "get_signing_key_status": Endpoint(
        lambda c, w: c.get_signing_key_status("my-agent"),
        "GET",
        "/api/v1/identities/my-agent/signing-key",
        SigningKeyStatus,
    ),
    "create_subscription": Endpoint(
        lambda c, w: c.create_subscription(
            agent_identity_id=w.identity.id,
            url="https://bot.example/webhook",
            event_types=("imessage.received",),
            auth_token="tok",
        ),
        "POST",
        "/api/v1/webhooks/subscriptions",
        WebhookSubscription,
        body=lambda w: {
            "agent_identity_id": w.identity.id,
            "url": "https://bot.example/webhook",
            "event_types": ["imessage.received"],
            "auth_token": "tok",
        },
    ),
    "list_subscriptions": Endpoint(
        lambda c, w: c.list_subscriptions(
            agent_identity_id=w.identity.id, event_type="imessage.delivery_failed"
        ),
        "GET",
        "/api/v1/webhooks/subscriptions",
        [WebhookSubscription],
        query=lambda w: {
            "agent_identity_id": w.identity.id,
            "event_type": "imessage.delivery_failed",
        },
    ),
    "get_subscription": Endpoint(
        lambda c, w: c.get_subscription(w.subscription.id),
        "GET",
        "/api/v1/webhooks/subscriptions/{w.subscription.id}",
        WebhookSubscription,
    ),
    "update_subscription": Endpoint(
        lambda c, w: c.update_subscription(
            w.subscription.id,
            url="https://bot.example/hook2",
            event_types=["imessage.sent"],
            auth_token="t2",
        ),
        "PATCH",
        "/api/v1/webhooks/subscriptions/{w.subscription.id}",
        WebhookSubscription,
        body={
            "url": "https://bot.example/hook2",
            "event_types": ["imessage.sent"],
            "auth_token": "t2",
        },
    ),
    "delete_subscription": Endpoint(
        lambda c, w: c.delete_subscription(w.subscription.id),
        "DELETE",
        "/api/v1/webhooks/subscriptions/{w.subscription.id}",
        None,
    ),
}


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_endpoint(world: World, wire: Recording, client: InkboxClient, name: str) -> None:
    endpoint = ENDPOINTS[name]
    with anyio.fail_after(5):
        result = await endpoint.call(client, world)
    (req,) = wire.requests
    assert (req.method, req.path) == (endpoint.method, endpoint.path.format(w=world))
    assert req.query == (resolve(endpoint.query, world) or {})
    body = resolve(endpoint.body, world)
    if body is None:
        assert req.body == b""
    else:
        assert req.json() == body
        assert req.headers["Content-Type"] == "application/json"
    if isinstance(endpoint.returns, list):
        (item_type,) = endpoint.returns
        assert isinstance(result, list)
        assert all(isinstance(item, item_type) for item in result)
    elif endpoint.returns is None:
        assert result is None
    else:
        assert isinstance(result, endpoint.returns)


def test_the_endpoint_table_covers_every_endpoint() -> None:
    public = {
        name
        for name in dir(InkboxClient)
        if not name.startswith("_") and callable(getattr(InkboxClient, name))
    }
    # Covered elsewhere in this file: sends and their lookup, uploads, paging twins, the
    # triage number.
    elsewhere = {
        "send_message",
        "find_send",
        "upload_media",
        "list_messages",
        "get_triage_number",
        "aclose",
    }
    iterators = {name for name in public if name.startswith("iter_")}
    assert public - elsewhere - iterators == set(ENDPOINTS)


async def test_ids_are_quoted_in_paths(wire: Recording, client: InkboxClient) -> None:
    # The simulator refuses the id (not a UUID); what matters is that it stayed one segment.
    with anyio.fail_after(5), pytest.raises(InkboxError):
        await client.get_message("m/1")
    assert wire.requests[0].path == "/api/v1/imessage/messages/m%2F1"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.send_reaction("m1", "custom"),
        lambda c: c.send_reaction("m1", "love", part_index=-1),
        lambda c: c.create_contact_rule("h", action="block", match_target="555"),
        lambda c: c.create_contact_rule("h", action="shun", match_target="+15555550199"),
        lambda c: c.update_contact_rule("h", "r"),
        lambda c: c.update_contact_rule("h", "r", status="deleted"),
        lambda c: c.list_contact_rules("h", direction="sideways"),
        lambda c: c.update_identity("h"),
        lambda c: c.update_identity("h", filter_mode="greylist"),
        lambda c: c.create_subscription(agent_identity_id="i", url="u", event_types=[]),
        lambda c: c.create_subscription(agent_identity_id="i", url="u", event_types=["a", "a"]),
        lambda c: c.update_subscription("s"),
        lambda c: c.update_subscription("s", event_types=[]),
    ],
)
async def test_invalid_arguments_are_refused_locally(
    wire: Recording, client: InkboxClient, call: Callable[[InkboxClient], Awaitable[Any]]
) -> None:
    with pytest.raises(InvalidRequest):
        await call(client)
    assert wire.requests == []


# --- faults the simulator cannot produce on demand: a scripted server -------------------------


@pytest.fixture
async def stub() -> AsyncIterator[InkboxStub]:
    server = InkboxStub()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def stub_client(stub: InkboxStub) -> AsyncIterator[InkboxClient]:
    async with InkboxClient(api_key=KEY, base_url=stub.url) as c:
        yield c


def sent_reply(status: int = 201) -> Reply:
    return Reply(status, EX["send_response"])


# --- retries, Retry-After and one idempotency key across attempts -----------------------------


async def test_connections_are_kept_alive(stub: InkboxStub, stub_client: InkboxClient) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(200, EX["triage_number"]))
    with anyio.fail_after(5):
        for _ in range(3):
            await stub_client.get_triage_number()
    assert len({r.peer for r in stub.requests}) == 1


async def test_one_key_across_retries(stub: InkboxStub, stub_client: InkboxClient) -> None:
    stub.reply(
        "POST",
        MSG,
        Reply(503, {"detail": "upstream busy"}),
        Reply(502, {"detail": "bad gateway"}),
        sent_reply(),
    )
    with anyio.fail_after(10):
        message = await stub_client.send_message(conversation_id=CID, text="hello")
    assert message.id == EX["send_response"]["message"]["id"]
    assert len(stub.requests) == 3
    keys = {r.headers["Idempotency-Key"] for r in stub.requests}
    assert len(keys) == 1
    assert all(r.headers["Prefer"] == "idempotency-replay" for r in stub.requests)
    assert all(r.json() == {"conversation_id": CID, "text": "hello"} for r in stub.requests)


async def test_in_progress_send_is_retried(stub: InkboxStub, stub_client: InkboxClient) -> None:
    busy = {"detail": {"error": "idempotency_in_progress", "message": "still running"}}
    stub.reply("POST", MSG, Reply(409, busy), sent_reply())
    with anyio.fail_after(10):
        await stub_client.send_message(conversation_id=CID, text="hello", idempotency_key="k-1")
    assert [r.headers["Idempotency-Key"] for r in stub.requests] == ["k-1", "k-1"]


async def test_retry_after_is_honoured(stub: InkboxStub, stub_client: InkboxClient) -> None:
    limited = {"detail": {"error": "sender_rate_limited", "message": "slow down"}}
    stub.reply("POST", MSG, Reply(429, limited, {"Retry-After": "1"}), sent_reply())
    with anyio.fail_after(10):
        await stub_client.send_message(conversation_id=CID, text="hello")
    first, second = stub.requests
    waited = second.at - first.at
    assert 0.95 <= waited < 3.0
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


async def test_long_retry_after_raises_at_once(stub: InkboxStub, stub_client: InkboxClient) -> None:
    limited = {"detail": {"error": "sender_rate_limited", "message": "24h cap reached"}}
    stub.reply("POST", MSG, Reply(429, limited, {"Retry-After": "3600"}))
    started = time.monotonic()
    with anyio.fail_after(5), pytest.raises(RateLimited) as info:
        await stub_client.send_message(conversation_id=CID, text="hello", idempotency_key="k-429")
    assert time.monotonic() - started < 1.0
    assert len(stub.requests) == 1
    error = info.value
    assert error.retry_after == 3600
    assert error.status == 429
    assert error.code == "sender_rate_limited"
    assert error.idempotency_key == "k-429"


async def test_max_retry_after_is_configurable(stub: InkboxStub) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(503, None, {"Retry-After": "2"}))
    with anyio.fail_after(5):
        async with InkboxClient(api_key=KEY, base_url=stub.url, max_retry_after=1.0) as c:
            with pytest.raises(ServerError) as info:
                await c.get_triage_number()
    assert info.value.retry_after == 2
    assert len(stub.requests) == 1


async def test_exhausted_retries_raise_the_typed_error_with_the_key(
    stub: InkboxStub, stub_client: InkboxClient
) -> None:
    stub.reply("POST", MSG, Reply(503, {"detail": "down"}))
    with anyio.fail_after(10), pytest.raises(ServerError) as info:
        await stub_client.send_message(conversation_id=CID, text="hi")
    assert len(stub.requests) == 3
    assert info.value.idempotency_key == stub.requests[0].headers["Idempotency-Key"]


async def test_max_attempts(stub: InkboxStub) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(502, {"detail": "x"}))
    with anyio.fail_after(5):
        async with InkboxClient(api_key=KEY, base_url=stub.url, max_attempts=1) as c:
            with pytest.raises(ServerError):
                await c.get_triage_number()
    assert len(stub.requests) == 1


async def test_non_idempotent_create_is_retried_after_a_refusal(
    stub: InkboxStub, stub_client: InkboxClient
) -> None:
    stub.reply(
        "POST",
        "/api/v1/identities/",
        Reply(503, {"detail": "down"}),
    )
    with anyio.fail_after(5), pytest.raises(ServerError):
        await stub_client.create_identity("my-agent")
    assert len(stub.requests) == 1
    stub.requests.clear()
    stub.reply(
        "POST", "/api/v1/identities/", Reply(429, {"detail": "slow"}), Reply(201, EX["identity"])
    )
    with anyio.fail_after(5):
        identity = await stub_client.create_identity("my-agent")
    assert identity.agent_handle == "my-agent"
    assert len(stub.requests) == 2


# --- typed errors, from every documented error shape ------------------------------------------


ERROR_CASES: list[tuple[int, Any, type[InkboxError], str | None]] = [
    (400, {"detail": "Identity is not iMessage-enabled"}, BadRequest, None),
    (401, {"detail": "Invalid API key"}, Unauthorized, None),
    (403, {"detail": "Admin key required"}, Forbidden, None),
    (
        403,
        {
            "detail": {
                "error": "recipient_blocked",
                "message": "blocked",
                "matched_rule_id": "e2f4a6c8-0b1d-4e3f-9a5b-7c9d1e3f5a70",
                "address": "+15555550199",
                "reason": "contact_rule",
            }
        },
        RecipientBlocked,
        "recipient_blocked",
    ),
    (
        404,
        {
            "detail": {
                "error": "no_assignment",
                "message": "not connected",
                "connect_command": "connect @my-agent",
                "router_number": "+15550100000",
            }
        },
        NotConnected,
        "no_assignment",
    ),
    (404, {"detail": "Message not found"}, NotFound, None),
    (
        409,
        {"detail": {"error": "conversation_released", "message": "released"}},
        ConversationReleased,  # a ConversationInactive
        "conversation_released",
    ),
    (
        409,
        {"detail": {"error": "recipient_has_not_messaged", "message": "silent"}},
        NotMessagedYet,  # a ConversationInactive
        "recipient_has_not_messaged",
    ),
    (
        409,
        {"detail": {"error": "idempotency_key_reused", "message": "different body"}},
        IdempotencyKeyReused,
        "idempotency_key_reused",
    ),
    (
        409,
        {"detail": {"message": "rule exists", "existing_rule_id": "e2f4a6c8-0b1d-4e3f"}},
        DuplicateContactRule,
        "duplicate_contact_rule",
    ),
    (
        413,
        {"detail": {"error": "media_too_large", "limit_bytes": 10485760}},
        PayloadTooLarge,
        "media_too_large",
    ),
    (
        422,
        {"detail": {"error": "recipient_not_e164", "message": "receive-only"}},
        RecipientNotE164,
        "recipient_not_e164",
    ),
    (
        422,
        {"detail": [{"loc": ["body", "text"], "msg": "too long", "type": "value_error"}]},
        Unprocessable,
        None,
    ),
    (500, {"detail": "Internal Server Error"}, ServerError, None),
]


@pytest.mark.parametrize(("status", "body", "error_type", "code"), ERROR_CASES)
async def test_error_statuses_map_to_types(
    stub: InkboxStub,
    stub_client: InkboxClient,
    status: int,
    body: Any,
    error_type: type[InkboxError],
    code: str | None,
) -> None:
    stub.reply("POST", MSG, Reply(status, body))
    with anyio.fail_after(5), pytest.raises(InkboxError) as info:
        await stub_client.send_message(conversation_id=CID, text="hi", idempotency_key="k-err")
    error = info.value
    assert type(error) is error_type
    assert error.status == status
    assert error.code == code
    assert error.idempotency_key == "k-err"
    assert len(stub.requests) == 1  # none of these is retried
    assert str(status) in str(error)


async def test_error_details_are_exposed(stub: InkboxStub, stub_client: InkboxClient) -> None:
    blocked, not_connected, duplicate = ERROR_CASES[3][1], ERROR_CASES[4][1], ERROR_CASES[9][1]
    stub.reply("POST", MSG, Reply(403, blocked), Reply(404, not_connected), Reply(409, duplicate))
    with anyio.fail_after(5):
        with pytest.raises(RecipientBlocked) as b:
            await stub_client.send_message(conversation_id=CID, text="hi")
        with pytest.raises(NotConnected) as n:
            await stub_client.send_message(to="+15555550142", text="hi")
        with pytest.raises(DuplicateContactRule) as d:
            await stub_client.send_message(conversation_id=CID, text="hi")
    assert b.value.matched_rule_id == "e2f4a6c8-0b1d-4e3f-9a5b-7c9d1e3f5a70"
    assert b.value.address == "+15555550199"
    assert n.value.connect_command == "connect @my-agent"
    assert n.value.router_number == "+15550100000"
    assert d.value.existing_rule_id == "e2f4a6c8-0b1d-4e3f"


async def test_agent_support_is_kept(stub: InkboxStub, stub_client: InkboxClient) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(404, EX["error_envelope"]))
    with anyio.fail_after(5), pytest.raises(NotFound) as info:
        await stub_client.get_triage_number()
    assert info.value.agent_support == "optional escalation text"
    assert info.value.message == "human readable string OR structured object"


async def test_plain_text_not_connected_404_on_send_by_number(
    stub: InkboxStub, stub_client: InkboxClient
) -> None:
    detail = {"detail": "No assignment. Text connect @my-agent to +15550100000 first."}
    stub.reply("POST", MSG, Reply(404, detail))
    with anyio.fail_after(5):
        with pytest.raises(NotConnected) as info:
            await stub_client.send_message(to="+15555550142", text="hi", idempotency_key="k-nc")
        assert info.value.idempotency_key == "k-nc"
        # By conversation id the same text is a plain not-found.
        with pytest.raises(NotFound) as plain:
            await stub_client.send_message(conversation_id=CID, text="hi")
    assert type(plain.value) is NotFound


@pytest.mark.parametrize("status", [502, 503, 504, 429])
async def test_retryable_statuses_are_retried_then_raised(
    stub: InkboxStub, stub_client: InkboxClient, status: int
) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(status, {"detail": "busy"}))
    with anyio.fail_after(10), pytest.raises(InkboxError) as info:
        await stub_client.get_triage_number()
    assert info.value.status == status
    assert isinstance(info.value, RateLimited if status == 429 else ServerError)
    assert len(stub.requests) == 3


async def test_html_error_page_becomes_the_message(
    stub: InkboxStub, stub_client: InkboxClient
) -> None:
    page = b"<html><body>Bad gateway from the proxy</body></html>"
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(500, raw=page))
    with anyio.fail_after(5), pytest.raises(ServerError) as info:
        await stub_client.get_triage_number()
    assert "Bad gateway from the proxy" in info.value.message


async def test_empty_error_body(stub: InkboxStub, stub_client: InkboxClient) -> None:
    stub.reply("DELETE", "/api/v1/imessage/reactions/r1", Reply(404))
    with anyio.fail_after(5), pytest.raises(NotFound) as info:
        await stub_client.remove_reaction("r1")
    assert info.value.message == "HTTP 404"


async def test_unknown_4xx_is_a_plain_inkbox_error(
    stub: InkboxStub, stub_client: InkboxClient
) -> None:
    quota = {"detail": {"error": "recipient_blocked", "message": "quota"}}
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(402, quota))
    with anyio.fail_after(5), pytest.raises(InkboxError) as info:
        await stub_client.get_triage_number()
    # A known code under an unexpected status keeps the status family.
    assert type(info.value) is InkboxError
    assert info.value.code == "recipient_blocked"


async def test_server_side_413(stub: InkboxStub, stub_client: InkboxClient) -> None:
    stub.reply(
        "POST", "/api/v1/imessage/media", Reply(413, {"detail": {"error": "media_too_large"}})
    )
    with anyio.fail_after(5), pytest.raises(PayloadTooLarge):
        await stub_client.upload_media(b"x")


# --- unreadable answers and transport failures ------------------------------------------------


async def test_undecodable_success_is_retried_then_a_transport_error(
    stub: InkboxStub, stub_client: InkboxClient
) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(200, raw=b'{"number": "+1'))
    with anyio.fail_after(10), pytest.raises(TransportError, match="not JSON"):
        await stub_client.get_triage_number()
    assert len(stub.requests) == 3


async def test_undecodable_send_answer_retries_with_the_same_key(
    stub: InkboxStub, stub_client: InkboxClient
) -> None:
    stub.reply("POST", MSG, Reply(201, raw=b"{"), sent_reply())
    with anyio.fail_after(10):
        await stub_client.send_message(conversation_id=CID, text="x")
    assert len({r.headers["Idempotency-Key"] for r in stub.requests}) == 1
    assert len(stub.requests) == 2


async def test_wrong_shape_is_not_retried(stub: InkboxStub, stub_client: InkboxClient) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", Reply(200, {"unexpected": True}))
    with anyio.fail_after(5), pytest.raises(TransportError, match="expected shape"):
        await stub_client.get_triage_number()
    assert len(stub.requests) == 1


async def test_timeout_is_a_transport_error(stub: InkboxStub) -> None:
    stub.reply("GET", "/api/v1/imessage/triage-number", stub.hang())
    with anyio.fail_after(10):
        async with InkboxClient(api_key=KEY, base_url=stub.url, timeout=0.2, max_attempts=2) as c:
            with pytest.raises(TransportError, match=r"no answer within 0\.2 s"):
                await c.get_triage_number()
    assert len(stub.requests) == 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retried_then_raised() -> None:
    port = closed_port()
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with InkboxClient(api_key=KEY, base_url=f"http://127.0.0.1:{port}") as c:
            with pytest.raises(ConnectError) as info:
                await c.send_message(conversation_id=CID, text="x", idempotency_key="k-refused")
    assert isinstance(info.value, TransportError)
    assert info.value.idempotency_key == "k-refused"
    assert "cannot connect" in str(info.value)
    retries = [entry for entry in logs if entry["event"] == "inkbox.retry"]
    assert [entry["attempt"] for entry in retries] == [1, 2]


async def test_reset_mid_send_is_retried_with_the_same_key() -> None:
    attempts: list[Request] = []

    def flaky(request: Request) -> Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise TransportError("connection reset by peer")
        return Response(
            201, {"content-type": "application/json"}, json.dumps(EX["send_response"]).encode()
        )

    with anyio.fail_after(5):
        async with InkboxClient(
            api_key=KEY, base_url="http://127.0.0.1:9", transport=MockTransport(flaky)
        ) as c:
            await c.send_message(conversation_id=CID, text="x")
    assert len(attempts) == 2
    assert attempts[0].headers["Idempotency-Key"] == attempts[1].headers["Idempotency-Key"]
    assert attempts[0].body == attempts[1].body


async def test_non_idempotent_create_is_not_retried_after_a_reset() -> None:
    attempts: list[Request] = []

    async def reset(request: Request) -> Response:
        attempts.append(request)
        raise TransportError("connection reset by peer")

    with anyio.fail_after(5):
        async with InkboxClient(
            api_key=KEY, base_url="http://127.0.0.1:9", transport=MockTransport(reset)
        ) as c:
            with pytest.raises(TransportError):
                await c.create_identity("my-agent")
    assert len(attempts) == 1


# --- the API key stays out of errors, reprs and logs ------------------------------------------


async def test_a_malformed_answer_is_an_error_that_holds_no_key() -> None:
    # aiohttp's own error for an unparsable answer carries the request's headers in its repr
    # and args; it used to be quoted in the message and kept as the cause.
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with anyio.fail_after(10):
            async with InkboxClient(api_key=KEY, base_url=f"http://127.0.0.1:{port}") as c:
                with pytest.raises(TransportError) as info:
                    await c.get_triage_number()
    finally:
        server.close()
        await server.wait_closed()
    error = info.value
    assert "ClientResponseError: 400" in str(error)
    for shown in (str(error), repr(error), repr(error.args)):
        assert KEY not in shown
    assert error.__cause__ is None and error.__context__ is None


def test_a_request_repr_shows_neither_the_key_nor_the_body() -> None:
    request = Request(
        "POST",
        "http://127.0.0.1:9/api/v1/imessage/messages",
        {"X-API-Key": KEY, "authorization": "Bearer t0ken", "Accept": "application/json"},
        b'{"text": "the human\'s words"}',
        30.0,
    )
    shown = repr(request)
    assert KEY not in shown and "t0ken" not in shown and "words" not in shown
    assert "'X-API-Key': '***'" in shown and "'Accept': 'application/json'" in shown
    assert "body=<29 bytes>" in shown
    assert request.headers["X-API-Key"] == KEY  # only the repr hides it


async def test_the_clients_key_is_masked_in_logs_whatever_its_shape() -> None:
    odd = "org-issued-key-5f2b9c1d7e"
    assert redact_text(f"sent {odd}") == f"sent {odd}"
    async with InkboxClient(api_key=odd, base_url="http://127.0.0.1:9"):
        pass
    assert redact_text(f"sent {odd}") == "sent ***"
