"""Where a clicked notification lands: its conversation's permalink in the Telex web app.

The web app's own links (its ``message-link``):

* a channel: ``{web}/{orgSlug}/home/channels/{channel_id}?thread_id={thread_id}``
* a DM or group DM: ``{web}/{orgSlug}/dms/{channel_id}?thread_id={thread_id}``

``thread_id`` is left out when the push did not say which thread. ``{web}`` is the setting
``web_url`` (an origin); ``orgSlug`` is the organisation's ``slug`` when the server sent one,
else its name made into a slug the way the backend makes them (:func:`slugify`).

Every id comes from the server, so a link is built only from plain ids and a plain slug
(:mod:`app.untrusted`), with yarl, and is given out only when its origin is the setting's: no
push can make a click open another site. Pure: no I/O, no imports from ``core``, ``ui`` or
``notify``, so the Tk thread can use it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

from yarl import URL

from app.models import Notice, Organisation
from app.untrusted import is_plain_id, is_plain_slug

logger = logging.getLogger(__name__)

SLUG_MAX = 128
#: What a slug maker writes as words rather than dropping (English, the backend's default).
_SPOKEN = {"&": " and ", "@": " at "}
_QUOTES = re.compile(r"['\u2019\u2018\"]")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """``name`` as a link slug: accents dropped (``é`` → ``e``), lower case, ``&`` and ``@`` as
    words, quotes dropped, every other run of non-letters and non-digits one ``-``, none at the
    ends. "" when nothing is left (a name in a script without an ASCII spelling)."""
    text = "".join(_SPOKEN.get(c, c) for c in unicodedata.normalize("NFKD", name))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _QUOTES.sub("", text.lower())
    slug = _NOT_SLUG.sub("-", text.encode("ascii", "ignore").decode()).strip("-")
    return slug[:SLUG_MAX].rstrip("-")


def org_slug(org: Organisation) -> str:
    """The organisation in web links: the server's slug, else its name made into one."""
    return org.slug if is_plain_slug(org.slug) else slugify(org.name)


def conversation_link(
    web_url: str, notice: Notice, organisations: Iterable[Organisation]
) -> str | None:
    """The permalink of the conversation ``notice`` is about, or None when it is about no
    single conversation, its organisation is unknown or has no usable slug, or an id is not
    a plain id."""
    if not notice.channel_id or not notice.org_id:
        return None
    ids = [notice.org_id, notice.channel_id, *([notice.thread_id] if notice.thread_id else [])]
    if not all(is_plain_id(value) for value in ids):
        logger.warning("Not linking to the conversation: an id in the notice is not a plain id")
        return None
    org = next((o for o in organisations if o.id == notice.org_id), None)
    slug = org_slug(org) if org is not None else ""
    if not is_plain_slug(slug):
        logger.info("Not linking to the conversation: its organisation has no usable slug")
        return None
    base = URL(web_url)
    place = ("dms",) if notice.dm else ("home", "channels")
    link = base.joinpath(slug, *place, notice.channel_id)
    if notice.thread_id:
        link = link.with_query({"thread_id": notice.thread_id})
    return str(link) if same_origin(link, web_url) else None


def click_link(web_url: str, notice: Notice, organisations: Iterable[Organisation]) -> str | None:
    """What a click on ``notice`` opens in the browser: its conversation's permalink; the web
    app itself (``{web}/``) for a notice about no single conversation (a summary, the app's
    own); None, and nothing is opened, when the notice names a conversation with an id that is
    not a plain id."""
    link = conversation_link(web_url, notice, organisations)
    if link is not None:
        return link
    if notice.channel_id and not all(
        is_plain_id(value)
        for value in (notice.channel_id, notice.org_id, notice.thread_id)
        if value
    ):
        return None
    home = URL(web_url).with_path("/")
    return str(home) if same_origin(home, web_url) else None


def same_origin(link: URL | str, web_url: str) -> bool:
    """Whether ``link`` is on the web app's origin (scheme, host and port) and absolute."""
    try:
        url, web = URL(link), URL(web_url)
        return url.is_absolute() and web.is_absolute() and url.origin() == web.origin()
    except (ValueError, TypeError):
        return False
