"""Server input at the edge: which ids the app keeps, and how server text is shown.

Every id and every string in a push or a REST reply is chosen by the server, or by another Telex
user (channel names, user names, organisation names, message previews). So:

* an id is kept (as a dictionary key, a channel name, a part of a web link) only when it is a
  plain id, an organisation's link name only when it is a plain slug; anything else is refused
  where it comes in;
* text is shown only after :func:`shown`: no control or format characters (bidi overrides,
  zero-width characters, BEL/ESC), one space for any run of whitespace, a bounded length;
* a title that starts with the app's name is the app's own (:func:`own_title`); a title made of
  server text never does (:func:`server_title`), so a user named "Telex Start" cannot pose as the
  app.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TypeGuard

from app.constants import APP_NAME
from app.models import Organisation

#: A conversation, organisation or user id as Telex writes them (UUIDs), with room to spare: at
#: most 128 characters, no leading "-" (it must never read as an option), no space, no "/".
PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

#: An organisation's name in web links (``slug``), as slug makers write them: letters and
#: digits in runs joined by "-" or "_", at most 128 characters; one path segment of a link.
PLAIN_SLUG = re.compile(r"(?=.{1,128}\Z)[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")

#: Unicode categories never shown: control (Cc), format (Cf: bidi controls, zero-width
#: characters, soft hyphen) and lone surrogates (Cs), which no notification service can encode.
_HIDDEN = frozenset({"Cc", "Cf", "Cs"})

#: :func:`shown` reads at most this many characters per character it may show, so text padded
#: with hidden characters shows less but never costs more.
_READ_PER_SHOWN = 8

#: Characters of an organisation's name shown in a title or a menu.
ORGANISATION_SHOWN = 60

#: The separator between the app's name and the topic of one of its notices.
OWN_SEPARATOR = " · "


def is_plain_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and PLAIN_ID.fullmatch(value) is not None


def is_plain_slug(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and PLAIN_SLUG.fullmatch(value) is not None


def shown(text: str, limit: int) -> str:
    """``text`` as it may be shown: hidden characters removed, whitespace (newlines included)
    collapsed to single spaces, stripped, at most ``limit`` characters (the last one "…")."""
    words = text[: limit * _READ_PER_SHOWN].split()
    visible = ("".join(c for c in w if unicodedata.category(c) not in _HIDDEN) for w in words)
    cleaned = " ".join(w for w in visible if w)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


_APP_FOLDED = _folded(APP_NAME)


def own_title(topic: str | None = None) -> str:
    """The title of a notice the app makes itself: its name, or ``Telex Start · <topic>``."""
    return APP_NAME if topic is None else f"{APP_NAME}{OWN_SEPARATOR}{topic}"


def server_title(text: str) -> str:
    """A title made of server text (already :func:`shown`), marked with quotes when it would
    start with the app's name in any case or width: those titles belong to the app."""
    return f"“{text}”" if _folded(text).startswith(_APP_FOLDED) else text


def organisation_labels(organisations: Iterable[Organisation]) -> Mapping[str, str]:
    """id -> the organisation's name as a user sees it (:func:`shown`), unique: names that look
    the same get the shortest prefix of their id (at least 6 characters) that tells them apart,
    and a label that still looks like another one (a name made to look like "Acme (1f0e9a)")
    gets the whole id, so a user always knows which one a menu entry or a title means."""
    names = {org.id: shown(org.name, ORGANISATION_SHOWN) or org.id for org in organisations}
    by_name: dict[str, list[str]] = {}
    for org_id, name in names.items():
        by_name.setdefault(_folded(name), []).append(org_id)
    labels: dict[str, str] = {}
    for ids in by_name.values():
        if len(ids) == 1:
            labels[ids[0]] = names[ids[0]]
            continue
        longest = max(len(org_id) for org_id in ids)
        size = next(
            (n for n in range(6, longest) if len({i[:n] for i in ids}) == len(ids)), longest
        )
        labels.update((org_id, f"{names[org_id]} ({org_id[:size]})") for org_id in ids)
    whole: set[str] = set()  # ids whose label carries the whole id: those end the loop
    while True:
        seen: dict[str, list[str]] = {}
        for org_id, label in labels.items():
            seen.setdefault(_folded(label), []).append(org_id)
        clashing = {i for ids in seen.values() if len(ids) > 1 for i in ids} - whole
        if not clashing:
            return labels
        whole |= clashing
        labels.update((org_id, f"{names[org_id]} ({org_id})") for org_id in clashing)
