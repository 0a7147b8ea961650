"""The push WebSocket on the API's host (``/centrifugo/connection/websocket``), as Telex serves
it: frames and close codes pass through unchanged, so an app given only the API URL connects."""

from __future__ import annotations

import json
import time

import aiohttp
import jwt

from app.config import websocket_url_for
from devstack.stack import LocalStack
from devstack.telex_api import PUSH_WS_PATH


def connection_token(stack: LocalStack, user: str) -> str:
    claims = {"sub": user, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, stack.hmac_secret, algorithm="HS256")


async def test_the_api_host_serves_the_push_websocket_and_passes_close_codes() -> None:
    async with LocalStack() as stack, aiohttp.ClientSession() as http:
        gateway = websocket_url_for(stack.api_url)
        assert gateway.endswith(PUSH_WS_PATH)
        assert gateway != stack.ws_url, "the direct push URL is another port"
        async with http.ws_connect(gateway) as ws:
            token = connection_token(stack, "user-1")
            await ws.send_str(json.dumps({"id": 1, "connect": {"token": token}}))
            reply = json.loads((await ws.receive_str(timeout=5)).splitlines()[0])
            assert reply["id"] == 1
            assert "client" in reply["connect"]

            push_server = stack.push_server
            assert push_server is not None
            await push_server.disconnect_user("user-1", 3503, "force disconnect")
            closing = await ws.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert (closing.data, closing.extra) == (3503, "force disconnect")


async def test_a_refused_token_closes_through_the_gateway_with_the_servers_code() -> None:
    async with (
        LocalStack() as stack,
        aiohttp.ClientSession() as http,
        http.ws_connect(websocket_url_for(stack.api_url)) as ws,
    ):
        await ws.send_str(json.dumps({"id": 1, "connect": {"token": "not-a-jwt"}}))
        replies = []
        while (message := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
            replies.append(message.data)
        # The push server answers an invalid token with error 109 or closes; either way the
        # client sees what the push server said, not a gateway error.
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data != 1011, replies
