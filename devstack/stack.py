"""The local Telex stack: the API simulator and a push server together on loopback.

``--demo`` and the integration tests need a whole Telex to talk to: a REST API that signs in and
hands out Centrifugo tokens, and a push server that accepts those tokens. Both share one HMAC
secret that is random per run and never printed. The push server is the in-repo one by default;
a :class:`PushTarget` points the simulator at any Centrifugo-compatible server instead (a real
Centrifugo v6 in the conformance suite). The stack seeds a demo account and, when asked, keeps
the account busy with short conversations from named colleagues (and count-only posts) so
the app has something to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from devstack.telex_api import (
    DEFAULT_TOKEN_TTL,
    JSON,
    OrgsPath,
    PublishError,
    SimulatorError,
    TelexApiSimulator,
)

if TYPE_CHECKING:
    from devstack.push_server import PushServer

logger = logging.getLogger(__name__)

DEMO_EMAIL: Final = "demo@telex.local"
DEMO_PASSWORD: Final = "telex-demo-2025"
DEMO_FIRST_NAME: Final = "Demo"
DEMO_LAST_NAME: Final = "User"

#: Organisation -> channels (name, description, topic) of the demo account.
DEMO_ORGS: Final[Mapping[str, tuple[tuple[str, str, str], ...]]] = {
    "Acme": (
        ("general", "Company-wide announcements and chatter", "Welcome to Acme"),
        ("engineering", "Builds, reviews and deploys", "Release 2.4 this Friday"),
        ("random", "Anything that does not fit elsewhere", ""),
    ),
    "Globex": (
        ("general", "Everything Globex", ""),
        ("design", "Mock-ups and critique", "New brand colours"),
        ("sales", "Leads and wins", "Q3 pipeline"),
    ),
}

#: Colleagues who own the demo organisations and send DMs: (email, first name, last name).
DEMO_COLLEAGUES: Final = (
    ("ada@telex.local", "Ada", "Lovelace"),
    ("grace@telex.local", "Grace", "Hopper"),
)


#: Named people who write in the demo organisations: (full name, organisations).
DEMO_MEMBERS: Final = (
    ("Ada Obi", ("Acme", "Globex")),
    ("Sam Ito", ("Acme",)),
    ("Lena Park", ("Globex",)),
    ("Tomi Bello", ("Acme", "Globex")),
)
#: Short things they say: channel posts, mentions of the demo user, replies, DMs, and what
#: the demo user writes themselves (so someone can reply to it).
DEMO_POSTS: Final = (
    "the deploy is done",
    "standup moves to 10:30 today",
    "CI is green again",
    "new mock-ups are in the shared drive",
    "who is up for lunch?",
    "the Q3 numbers are in",
)
DEMO_MENTIONS: Final = (
    "@{user} can you review the release notes?",
    "@{user} are you joining the call?",
    "thanks @{user}, that fixed it",
)
DEMO_REPLIES: Final = ("looks good to me", "merged, thanks!", "+1, ship it", "on it")
DEMO_DMS: Final = ("hey, got a minute?", "sent you the draft", "lunch tomorrow?")
DEMO_OWN_POSTS: Final = ("I'll write the release notes", "retro notes are up", "PR is ready")


@dataclass(frozen=True)
class DemoAccount:
    """The seeded account; its password is printed by ``python -m devstack`` on purpose."""

    email: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class PushTarget:
    """An external Centrifugo-compatible push server and the secrets it was configured with."""

    ws_url: str
    api_url: str
    api_key: str = field(repr=False)
    hmac_secret: str = field(repr=False)


class LocalStack:
    """Simulator + push server on loopback; ``async with LocalStack() as stack: ...``."""

    def __init__(
        self,
        *,
        connection_token_ttl: int = DEFAULT_TOKEN_TTL,
        subscription_token_ttl: int = DEFAULT_TOKEN_TTL,
        push: Literal["builtin"] | PushTarget = "builtin",
        demo_events_every: float | None = None,
        host: str = "127.0.0.1",
        api_port: int = 0,
        push_port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        publish_ssl: ssl.SSLContext | None = None,
        orgs_path: OrgsPath = "users",
        latency: float = 0.0,
        allow_subscribe_for_client: bool = False,
        push_options: Mapping[str, Any] | None = None,
        seed_demo: bool = True,
        rng_seed: int | None = None,
        admin_routes: bool = True,
    ) -> None:
        if demo_events_every is not None and demo_events_every <= 0:
            raise ValueError("demo_events_every must be positive")
        self._push_choice = push
        self._host, self._api_port, self._push_port = host, api_port, push_port
        self._ssl_context = ssl_context
        self._allow_subscribe_for_client = allow_subscribe_for_client
        self._push_options = dict(push_options or {})
        self._demo_events_every = demo_events_every
        self._rng = random.Random(rng_seed)  # demo traffic only, nothing secret
        if isinstance(push, PushTarget):
            self._hmac_secret, self._api_key = push.hmac_secret, push.api_key
        else:
            self._hmac_secret = secrets.token_urlsafe(32)
            self._api_key = secrets.token_urlsafe(24)
        self._simulator = TelexApiSimulator(
            centrifugo_secret=self._hmac_secret,
            push_api_url=push.api_url if isinstance(push, PushTarget) else None,
            push_api_key=self._api_key,
            connection_token_ttl=connection_token_ttl,
            subscription_token_ttl=subscription_token_ttl,
            latency=latency,
            orgs_path=orgs_path,
            publish_ssl=publish_ssl,
            admin_routes=admin_routes,
        )
        self._account = DemoAccount(DEMO_EMAIL, DEMO_PASSWORD)
        if seed_demo:
            self._seed()
        self._push_server: PushServer | None = None
        self._demo_task: asyncio.Task[None] | None = None
        self._started = False

    # -- seeding ----------------------------------------------------------------------------

    def _seed(self) -> None:
        """Colleagues own the organisations (so channel owners are real people); demo joins."""
        sim = self._simulator
        owner_email, owner_first, owner_last = DEMO_COLLEAGUES[0]
        sim.add_user(
            owner_email,
            secrets.token_urlsafe(16),
            first_name=owner_first,
            last_name=owner_last,
            orgs=tuple(DEMO_ORGS),
        )
        for email, first, last in DEMO_COLLEAGUES[1:]:
            sim.add_user(
                email, secrets.token_urlsafe(16), first_name=first, last_name=last, orgs=("Acme",)
            )
        sim.add_user(
            self._account.email,
            self._account.password,
            first_name=DEMO_FIRST_NAME,
            last_name=DEMO_LAST_NAME,
            orgs=tuple(DEMO_ORGS),
        )
        for org_name, channels in DEMO_ORGS.items():
            for name, description, topic in channels:
                sim.add_channel(org_name, name, description=description, topic=topic)
        for full_name, orgs in DEMO_MEMBERS:
            for org_name in orgs:
                sim.add_member(org_name, full_name)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("the stack is already running")
        try:
            if self._push_choice == "builtin":
                self._push_server = await self._start_push_server()
                self._simulator.set_push_target(self._push_server.api_url, self._api_key)
            # As in production, the push WebSocket is also on the API's host.
            self._simulator.set_push_websocket(self.ws_url)
            await self._simulator.start(self._host, self._api_port, self._ssl_context)
        except BaseException:
            await self._stop_parts()
            raise
        self._started = True
        if self._demo_events_every is not None:
            self._demo_task = asyncio.create_task(
                self._demo_events(self._demo_events_every), name="telex-demo-events"
            )
        logger.info("Local Telex stack running: API %s, push %s", self.api_url, self.ws_url)

    async def _start_push_server(self) -> PushServer:
        from devstack.push_server import PushServer, PushServerConfig

        config = PushServerConfig(
            hmac_secret=self._hmac_secret,
            api_key=self._api_key,
            host=self._host,
            port=self._push_port,
            allow_subscribe_for_client=self._allow_subscribe_for_client,
            ssl_context=self._ssl_context,
            **self._push_options,
        )
        server = PushServer(config)
        await server.start()
        return server

    async def stop(self) -> None:
        """Stop the demo traffic, then the simulator, then the push server; safe to repeat."""
        task, self._demo_task = self._demo_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_parts()
        self._started = False

    async def _stop_parts(self) -> None:
        await self._simulator.stop()
        server, self._push_server = self._push_server, None
        if server is not None:
            await server.stop()

    async def __aenter__(self) -> LocalStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what callers need ------------------------------------------------------------------

    @property
    def simulator(self) -> TelexApiSimulator:
        return self._simulator

    @property
    def push_server(self) -> PushServer | None:
        """The in-repo push server while it runs (``None`` with an external target)."""
        return self._push_server

    @property
    def account(self) -> DemoAccount:
        return self._account

    @property
    def api_url(self) -> str:
        """``http(s)://127.0.0.1:PORT/api/v1``."""
        return self._simulator.base_url

    @property
    def ws_url(self) -> str:
        if isinstance(self._push_choice, PushTarget):
            return self._push_choice.ws_url
        return self._running_push_server().ws_url

    @property
    def push_api_url(self) -> str:
        """Centrifugo-style HTTP API base (``…/api``); ``/publish`` is below it."""
        if isinstance(self._push_choice, PushTarget):
            return self._push_choice.api_url
        return self._running_push_server().api_url

    @property
    def hmac_secret(self) -> str:
        """The shared Centrifugo HMAC secret (for tests that verify tokens); never log it."""
        return self._hmac_secret

    @property
    def api_key(self) -> str:
        """The push server's HTTP API key; never log it."""
        return self._api_key

    def _running_push_server(self) -> PushServer:
        if self._push_server is None:
            raise RuntimeError("the stack is not running")
        return self._push_server

    # -- demo traffic -----------------------------------------------------------------------

    async def _demo_events(self, every: float) -> None:
        """Now and then something happens; a failed publish is logged and the loop goes on."""
        while True:
            await asyncio.sleep(every * self._rng.uniform(0.5, 1.5))
            try:
                await self.demo_event()
            except (PublishError, SimulatorError) as exc:
                logger.warning("Demo event failed: %s", exc)

    async def demo_event(self) -> list[JSON]:
        """One random event for the demo account: a read, a count-only post (the webhook-like
        :meth:`~TelexApiSimulator.post_message`), or a named member writing with
        :meth:`~TelexApiSimulator.send_message`: a channel post, a mention of the demo user, a
        reply to the demo user's thread, or a DM.

        Returns the payloads published to the demo account, in order. A read happens only on a
        channel with unread threads, so the app sees counts drop as well as rise.
        """
        sim, email = self._simulator, self._account.email
        org = self._rng.choice(sim.orgs_of(email))
        channels = [c.name for c in sim.channels_of(org.id)]
        roll = self._rng.random()
        unread = [c for c in channels if sim.unread(email, org.id, c)[0] > 0]
        if roll < 0.12 and unread:
            return await sim.read_channel(email, org.id, self._rng.choice(unread))
        channel = self._rng.choice(channels)
        if roll < 0.27:
            return [await sim.post_message(email, org.id, channel, mention=roll < 0.20)]
        member = self._rng.choice([m for m in sim.members_of(org.id) if m.email != email])
        if roll < 0.50:
            line = self._rng.choice(DEMO_POSTS)
            sent = await sim.send_message(member.email, org.id, line, channel=channel)
            return sent.to(email)
        if roll < 0.62:
            line = self._rng.choice(DEMO_MENTIONS).format(user=sim.user(email).username)
            sent = await sim.send_message(member.email, org.id, line, channel=channel)
            return sent.to(email)
        if roll < 0.80:
            return await self._demo_reply(org.id, channel, member.email)
        line = self._rng.choice(DEMO_DMS)
        return (await sim.send_message(member.email, org.id, line, dm_to=email)).to(email)

    async def _demo_reply(self, org_id: str, channel: str, member_email: str) -> list[JSON]:
        """Someone replies to one of the demo user's threads (written first if there is none)."""
        sim, email = self._simulator, self._account.email
        demo_id = sim.user(email).id
        channel_id = sim.add_channel(org_id, channel).id
        own = [t for t in sim.threads_in(channel_id) if t.sender_id == demo_id]
        published: list[JSON] = []
        if own:
            thread_id = self._rng.choice(own).id
        else:
            line = self._rng.choice(DEMO_OWN_POSTS)
            first = await sim.send_message(email, org_id, line, channel=channel)
            published.extend(first.to(email))
            thread_id = first.thread_id
        line = self._rng.choice(DEMO_REPLIES)
        reply = await sim.send_message(member_email, org_id, line, reply_to=thread_id)
        return published + reply.to(email)
