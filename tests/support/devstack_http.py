"""Calling the dev stack over HTTP in its own tests: the simulator's secrets and password, a stub
of the push server's publish API (:class:`PublishStub`), and call / login (the fixtures are in
tests/devstack/conftest.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from devstack.telex_api import TelexApiSimulator

HMAC_SECRET = "devstack-tests-hmac-secret-0123456789abcdef"


PUSH_API_KEY = "devstack-tests-api-key"


PASSWORD = "correct horse battery staple"


@dataclass
class PublishStub:
    """Records ``/api/publish`` calls; ``reply``/``status`` shape the next answers."""

    api_key: str = PUSH_API_KEY
    url: str = ""
    published: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=lambda: {"result": {}})
    status: int = 200

    @property
    def data(self) -> list[Any]:
        return [p["data"] for p in self.published]

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("X-API-Key") != self.api_key:
            return web.Response(status=401, text="Unauthorized")
        self.published.append(await request.json())
        return web.Response(status=self.status, text=json.dumps(self.reply))


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    text: str
    content_type: str


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    data: str | bytes | None = None,
) -> Reply:
    """One request; ``body`` is the parsed JSON or ``None`` when the body is not JSON."""
    async with http.request(method, url, headers=headers, json=json_body, data=data) as response:
        text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return Reply(response.status, body, text, response.content_type)


async def login(
    http: aiohttp.ClientSession, sim: TelexApiSimulator, email: str = "alice@example.com"
) -> dict[str, Any]:
    reply = await call(
        http, "POST", f"{sim.base_url}/auth/login", json_body={"email": email, "password": PASSWORD}
    )
    assert reply.status == 200, reply.text
    data: dict[str, Any] = reply.body["data"]
    return data
