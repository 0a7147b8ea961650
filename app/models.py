"""Typed data that crosses module boundaries.

Secrets are excluded from ``repr`` so they can never reach a log line or a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


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
    # The web app's name for it in links, when the server sends one (checked at the edge, in
    # app.core.api); "" means the name made into one (app.permalink.org_slug).
    slug: str = ""

    def channel_for(self, user_id: str) -> str:
        """The personal push channel of ``user_id`` in this organisation (``<org>/<user>``);
        :func:`org_of_channel` reads it back."""
        return f"{self.id}/{user_id}"


def org_of_channel(channel: str) -> str:
    """The organisation of a personal push channel (:meth:`Organisation.channel_for`)."""
    return channel.split("/", 1)[0]


class NoticeKind(StrEnum):
    NEWS = "news"  # one conversation has something new
    SUMMARY = "summary"  # several conversations at once, or what a pause held back
    INFO = "info"  # about the app itself: a test, a connection gap


class NoticeSource(StrEnum):
    """What a news notice is about, as Telex's "notify about" setting tells them apart."""

    UNKNOWN = ""
    POST = "post"  # a plain channel post (or count change)
    MENTION = "mention"
    REPLY = "reply"  # a reply in a thread
    DM = "dm"  # a (group) DM


@dataclass(frozen=True)
class Notice:
    """One desktop notification, as the policy (or the delivery pipeline) decided it."""

    key: str  # stable per conversation: used to replace an earlier notification
    title: str
    body: str
    org_id: str | None = None
    channel_id: str | None = None  # the conversation a click opens; None opens the main app
    kind: NoticeKind = NoticeKind.NEWS
    mentioned: bool = False  # the body says "You were mentioned": folding must keep that
    # The second event of a message already shown (its count change, then who wrote what):
    # it replaces that notification at once and is no new notification of its own.
    upgrade: bool = False
    # Where a click lands in the web app (app.permalink): the thread of the message, when the
    # push says, and whether the conversation is a (group) DM.
    thread_id: str | None = None
    dm: bool = False
    group_dm: bool = False  # a DM of several people: "Mark as read" has its own endpoint there
    # Says only counts (a channel post without the message): the channel's preview may tell
    # who wrote what (app.core.service fetches it).
    counts_only: bool = False
    source: NoticeSource = NoticeSource.UNKNOWN  # what it is about (app.core.telex_settings)


@dataclass(frozen=True)
class ChannelPreview:
    """A channel's newest message as Telex's channel list shows it (``user-channels``'s
    ``preview_thread[0]``): who wrote what, for a count change that says neither."""

    channel_id: str
    thread_id: str
    sender_id: str
    sender: str
    html: str = field(repr=False)  # the user's data: not in a repr, a log or a file
    created_at: datetime | None = None


class NoticeAction(StrEnum):
    """What the user did to a shown notification."""

    OPEN = "open"  # a click, or its "Open" button: the conversation opens
    MARK_READ = "mark_read"  # its "Mark as read" button (news only, backends with actions)


@dataclass(frozen=True)
class Activation:
    """A notification the user acted on, as a backend hands it to the loop thread."""

    notice: Notice
    action: NoticeAction = NoticeAction.OPEN


@dataclass(frozen=True)
class Quiet:
    """The user's wishes for silence: a pause (``until`` None: until resumed) and the
    organisations that never notify. A preference, not a secret."""

    paused: bool = False
    until: datetime | None = None  # timezone-aware
    muted: frozenset[str] = frozenset()  # organisation ids

    def paused_at(self, now: datetime) -> bool:
        """Paused at ``now``: a pause whose end has passed (even while the app was not
        running) is over."""
        return self.paused and (self.until is None or now < self.until)
