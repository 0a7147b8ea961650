"""The local Telex stack in front of either push server: the in-repo one or a real Centrifugo.

Shared by the end-to-end, security and benchmark code, so each does not start Centrifugo and
wire the simulator to it on its own.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack, PushTarget
from tests.support.centrifugo import find_centrifugo, run_centrifugo

#: (push server, connect-time subs honoured): every end-to-end case runs against all four.
PUSH_SERVERS = [
    pytest.param(("centrifugo", True), id="centrifugo-connect-subs", marks=pytest.mark.centrifugo),
    pytest.param(("centrifugo", False), id="centrifugo-sub-tokens", marks=pytest.mark.centrifugo),
    pytest.param(("builtin", True), id="builtin-connect-subs"),
    pytest.param(("builtin", False), id="builtin-sub-tokens"),
]


@contextlib.asynccontextmanager
async def local_stack(
    kind: str,
    connect_subs: bool,
    tmp_path: Path,
    *,
    centrifugo: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[LocalStack]:
    """The Telex API simulator publishing to a real Centrifugo (``kind`` "centrifugo", extra
    ``run_centrifugo`` arguments in ``centrifugo``) or to the in-repo server ("builtin");
    ``options`` go to :class:`LocalStack` (the in-repo server's own ones, such as
    ``push_options``, have no effect on Centrifugo)."""
    if kind == "builtin":
        async with LocalStack(allow_subscribe_for_client=connect_subs, **options) as stack:
            yield stack
        return
    async with run_centrifugo(
        hmac_secret=secrets.token_urlsafe(32),
        api_key=secrets.token_urlsafe(24),
        allow_subscribe_for_client=connect_subs,
        tmp_path=tmp_path / "centrifugo",
        binary=find_centrifugo(),
        **(centrifugo or {}),
    ) as inst:
        target = PushTarget(inst.ws_url, inst.api_url, inst.api_key, inst.hmac_secret)
        async with LocalStack(push=target, **options) as stack:
            yield stack
