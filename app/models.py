"""Typed data that crosses module boundaries.

Secrets are excluded from ``repr`` so they can never reach a log line or a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class User:
    id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class Session:
    """A signed-in Telex session; lives in memory only."""

    user: User
    access_token: str = field(repr=False)
    notification_token: str = field(repr=False)
    access_token_expires_at: datetime | None = None


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str

    def channel_for(self, user_id: str) -> str:
        """The personal push channel of ``user_id`` in this organisation."""
        return f"{self.id}/{user_id}"


@dataclass(frozen=True)
class Notice:
    """One desktop notification, as the policy decided it."""

    key: str  # stable per conversation: used to replace an earlier notification
    title: str
    body: str
    org_id: str | None = None
    channel_id: str | None = None
