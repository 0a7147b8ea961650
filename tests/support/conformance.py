"""The push server's conformance with the official Centrifugo SDKs: the HMAC secret, API key, user
and channel of the runs, and :class:`Tokens`, minting tokens as the Telex backend does (the
fixtures are in tests/conformance/conftest.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

SECRET = "conformance-hmac-secret-" + "0123456789abcdef" * 3


API_KEY = "conformance-api-key"


USER = "17"


CHANNEL = "8d2f6b1e-org/17"


ApiPublish = Callable[[str, Any], Awaitable[int]]


@dataclass
class Tokens:
    """Mints tokens like the Telex backend does."""

    ttl: int
    issued: Counter[str] = field(default_factory=Counter)

    def _mint(self, kind: str, **claims: Any) -> str:
        self.issued[kind] += 1
        claims = {"sub": USER, "exp": int(time.time()) + self.ttl, **claims}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    def connection(self) -> str:
        return self._mint("connection")

    def subscription(self, channel: str) -> str:
        return self._mint("subscription", channel=channel)
