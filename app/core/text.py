"""A Telex message (HTML from the rich-text editor) as the plain text a notification shows.

The ``message`` of a ``FeedMessageRequest`` and a DM's ``preview_message`` are HTML written by
another Telex user (or a media label such as "📷 Photo"). :func:`message_text` turns either into
one line of plain text, :func:`message_body` into the ``Sender: text`` body the backend's own
mobile pushes use:

* nothing is ever rendered as markup: tags are dropped, entities decoded (``&amp;``, ``&#x27;``,
  ``&nbsp;``), the contents of ``script`` and ``style`` dropped whole; a ``<`` that would open a
  tag (followed by a letter, ``/``, ``!`` or ``?``, e.g. a decoded ``&lt;b&gt;``) is written
  U+2039 (a single left-pointing angle quotation mark), so the result has no tag in it
  whatever reads it;
* a mention (``<span class="mention" data-label=…>@name</span>``) is ``@name``: its text, or
  ``@`` + ``data-label`` when the text is empty;
* block elements (``p``, ``br``, ``div``, ``li``, headings, table cells…) separate words; links
  keep their text (never the URL); code keeps its text;
* an inline image, video or audio adds nothing to the text; a message that is empty without it
  is its media label ("📷 Photo", "🎥 Video", "🎵 Audio"), or the caller's ``media`` label (from
  the message's attached files) when there is one. Media labels pass through unchanged;
* hidden characters are removed and whitespace collapsed exactly as :func:`app.untrusted.shown`
  does (it cleans every word), the result is stripped, and a text longer than ``limit``
  characters is cut on a word boundary and ends with "…" (``limit`` counts the "…").

Escaping for a notifier that reads markup (``&``, ``<``, ``>`` on Linux D-Bus servers) is not
done here: the result is plain text, and ``app/notify/desktop.py`` escapes it for the backends
that need it, so other backends never show ``&amp;``.

Hostile input costs time linear in at most :func:`read_limit` characters of it and never more
memory than that: the parser is not recursive and builds no tree (100,000 nested tags are as
cheap as 100,000 flat ones), at most ``read_limit(limit)`` characters of the message are read,
and collecting stops as soon as the text is longer than ``limit``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

from app.untrusted import shown

#: The default ``limit`` of :func:`message_text` and :func:`message_body`: characters of a
#: message shown in a notification body, the same as a DM preview's in ``app/core/policy.py``.
TEXT_SHOWN: Final = 200

#: Characters of the sender's name in :func:`message_body`.
SENDER_SHOWN: Final = 60

#: The mark of a text that was cut.
ELLIPSIS: Final = "…"

#: What stands for a ``<`` that would open a tag.
ANGLE: Final = "\u2039"  # a single left-pointing angle quotation mark

#: The label of an inline element that is media; the first one is the text of a message that
#: has no other text.
MEDIA_LABELS: Final = {"img": "📷 Photo", "video": "🎥 Video", "audio": "🎵 Audio"}

#: Elements that separate the words before and after them.
BLOCKS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
        "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip

#: Elements whose contents are never text (the parser reads them raw up to their end tag).
_DROPPED: Final = frozenset({"script", "style"})

#: Characters read per character of ``limit``, and at least this many: rich-text HTML carries
#: more markup than text (a mention is ~120 characters of markup for 6 of text).
_READ_PER_SHOWN: Final = 32
_READ_AT_LEAST: Final = 64 * 1024

#: A cut on the last word boundary keeps at least this share of ``limit``; otherwise (one very
#: long word, a URL) the word itself is cut.
_KEEP_AT_LEAST: Final = 0.5

#: Characters of one piece of text read per character still to collect, as ``shown`` reads: text
#: padded with whitespace or hidden characters shows less but never costs more.
_READ_PER_COLLECTED: Final = 8

_OPENS_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def read_limit(limit: int) -> int:
    """Characters of a message read to show at most ``limit`` characters of it."""
    return max(_READ_AT_LEAST, limit * _READ_PER_SHOWN)


class _Enough(Exception):
    """Raised from a handler to stop the parser once the text is long enough."""


class _Collector(HTMLParser):
    """Collects visible words, one space between words, until past ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self._limit = limit
        self._pieces: list[str] = []
        self._size = 0
        self._space = False  # a word boundary since the last word
        self._dropping: str | None = None  # inside script or style
        self._mention_depth = 0  # open spans inside a mention, itself included
        self._mention_label = ""
        self._mention_fresh = False  # the mention has had no text yet
        self.media = ""

    def text(self) -> str:
        return "".join(self._pieces)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropping = tag
        elif tag in BLOCKS:
            self._space = True
        elif tag in MEDIA_LABELS:
            self.media = self.media or MEDIA_LABELS[tag]
        elif tag == "span":
            if self._mention_depth:
                self._mention_depth += 1
                return
            values = dict(attrs)
            if "mention" in (values.get("class") or "").split():
                self._mention_depth = 1
                self._mention_fresh = True
                self._mention_label = values.get("data-label") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == self._dropping:
            self._dropping = None
        elif tag in BLOCKS:
            self._space = True
        elif tag == "span" and self._mention_depth:
            self._mention_depth -= 1
            if not self._mention_depth and self._mention_fresh:
                self._mention_fresh = False
                label = shown(self._mention_label, self._limit).lstrip("@")
                if label:
                    self._word("@" + label)

    def handle_data(self, data: str) -> None:
        if self._dropping is not None or not data:
            return
        budget = (self._limit - self._size + 1) * _READ_PER_COLLECTED
        cut = len(data) > budget
        data = data[:budget] if cut else data
        if data[0].isspace():
            self._space = True
        for number, word in enumerate(data.split()):
            if number:
                self._space = True
            visible = word if word.isprintable() else shown(word, len(word))
            if visible:
                if self._mention_fresh:
                    self._mention_fresh = False
                    visible = visible if visible.startswith("@") else "@" + visible
                self._word(visible)
        if data[-1].isspace():
            self._space = True
        if cut:
            self._stop()

    def _word(self, word: str) -> None:
        if self._space and self._pieces:
            self._pieces.append(" ")
            self._size += 1
        self._space = False
        self._pieces.append(word)
        self._size += len(word)
        if self._size > self._limit:
            self._stop()

    def _stop(self) -> None:
        raise _Enough


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    head = text[:limit]  # one more than fits with the "…": is the cut between two words?
    boundary = head.rfind(" ")
    if head[-1] == " ":
        kept = head[:-1]
    elif boundary >= (limit - 1) * _KEEP_AT_LEAST:
        kept = head[:boundary]
    else:
        kept = head[: limit - 1]
    return kept.rstrip() + ELLIPSIS


def _readable(html: str, limit: int) -> str:
    """The part of ``html`` that is read: at most :func:`read_limit` characters, without a tag,
    comment or declaration left open at its end (a cut one, or one the sender never closed),
    which the parser would otherwise give back as text."""
    read = html[: read_limit(limit)]
    opened = read.rfind("<")
    if opened > read.rfind(">") and (opened == len(read) - 1 or _OPENS_TAG.match(read, opened)):
        return read[:opened]
    return read


def message_text(html: str, limit: int = TEXT_SHOWN, *, media: str = "") -> str:
    """The plain text of a Telex message (HTML) or preview, at most ``limit`` characters.

    ``media`` is the label of the message's attached files ("📄 PDF"), the text of a message
    that has no text of its own; without it an inline image, video or audio gives its label.
    """
    if limit <= 0:
        return ""
    collector = _Collector(limit)
    try:
        collector.feed(_readable(html, limit))
        collector.close()
    except _Enough:
        pass
    text = collector.text() or shown(media, limit) or collector.media
    return _OPENS_TAG.sub(ANGLE, _cut(text, limit))


def message_body(sender: str, html: str, limit: int = TEXT_SHOWN, *, media: str = "") -> str:
    """``Sender: text``, at most ``limit`` characters; just the text when there is no sender's
    name, just the name when the message has no text (``sender`` is server text too)."""
    name = _OPENS_TAG.sub(ANGLE, shown(sender, min(SENDER_SHOWN, limit)))
    if not name:
        return message_text(html, limit, media=media)
    room = limit - len(name) - 2
    text = message_text(html, room, media=media) if room > 0 else ""
    return f"{name}: {text}" if text else name
