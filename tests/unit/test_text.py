"""app/core/text.py: a Telex message (HTML) as the plain text of a notification."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import text
from app.core.text import (
    ANGLE,
    ELLIPSIS,
    SENDER_SHOWN,
    TEXT_SHOWN,
    message_body,
    message_text,
    read_limit,
)
from tests.support.fuzzing import FUZZ

MB = 10 * 1024 * 1024

#: What any HTML or XML reader would take for the start of a tag.
TAG_LIKE = re.compile(r"<[A-Za-z/!?][^>]*>")
OPENS_TAG = re.compile(r"<[A-Za-z/!?]")

MENTION = (
    '<span class="mention" data-id="6f1c0b7e-2d4a-4f3e-9a51-1c2d3e4f5a6b" data-label="{}">{}</span>'
)

MEDIA_LABELS = [
    "📷 Photo",
    "🎥 Video",
    "🎵 Audio",
    "📄 PDF",
    "📝 Document",
    "📊 Spreadsheet",
    "📊 Presentation",
    "🗜️ Archive",
    "📎 File",
]


def well_formed(result: str) -> bool:
    return result == " ".join(result.split())


# -- the rules, one example each ------------------------------------------------------------------


def test_tags_are_dropped_and_the_words_kept() -> None:
    html = "<p>Deploy <strong>is</strong> <em>done</em>, <u>check</u> <s>it</s></p>"
    assert message_text(html) == "Deploy is done, check it"


def test_inline_tags_join_the_letters_around_them() -> None:
    assert message_text("<p><b>bo</b>ld and <i>it</i>alic</p>") == "bold and italic"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Tom &amp; Jerry</p>", "Tom & Jerry"),
        ("<p>it&#x27;s &quot;fine&quot;</p>", 'it\'s "fine"'),
        ("<p>a&nbsp;b&nbsp;&nbsp;c</p>", "a b c"),
        ("<p>&eacute;t&#233; &#128512;</p>", "été 😀"),
        ("<p>5 &lt; 6 &gt; 4</p>", "5 < 6 > 4"),
    ],
)
def test_entities_are_decoded(html: str, expected: str) -> None:
    assert message_text(html) == expected


def test_a_mention_is_at_name() -> None:
    html = f"<p>{MENTION.format('ada', '@ada')} can you review?</p>"
    assert message_text(html) == "@ada can you review?"


def test_an_empty_mention_is_at_its_label() -> None:
    html = f"<p>ping {MENTION.format('Ada Obi', '')}</p>"
    assert message_text(html) == "ping @Ada Obi"
    assert message_text(f"<p>{MENTION.format('@ada', '')}!</p>") == "@ada!"


def test_a_mention_without_its_at_sign_gets_one() -> None:
    assert message_text(f"<p>hi {MENTION.format('ada', 'ada')}</p>") == "hi @ada"


def test_a_mention_with_markup_inside_is_its_text() -> None:
    html = f"<p>{MENTION.format('ada', '<span>@a</span><b>da</b>')} ok</p>"
    assert message_text(html) == "@ada ok"


def test_a_self_closed_mention_is_at_its_label() -> None:
    assert message_text('<p>cc <span class="mention" data-label="bob"/></p>') == "cc @bob"


def test_other_spans_are_plain_text() -> None:
    assert message_text('<p><span class="highlight">note</span></p>') == "note"


@pytest.mark.parametrize(
    "html",
    [
        "<p>one</p><p>two</p>",
        "one<br>two",
        "one<br/>two",
        "<div>one</div><div>two</div>",
        "<ul><li>one</li><li>two</li></ul>",
        "<h1>one</h1>two",
        "<blockquote>one</blockquote>two",
        "<table><tr><td>one</td><td>two</td></tr></table>",
    ],
)
def test_block_elements_separate_words(html: str) -> None:
    assert message_text(html) == "one two"


def test_script_and_style_are_dropped_whole() -> None:
    html = (
        "<p>hi</p><script>alert('x <b>y</b>')</script><style>p { color: red }</style><p>there</p>"
    )
    assert message_text(html) == "hi there"


def test_an_unclosed_script_drops_the_rest() -> None:
    assert message_text("<p>hi</p><script>steal()<p>more</p>") == "hi"


def test_whitespace_is_collapsed_and_stripped() -> None:
    assert message_text("<p>\n  a \t b\r\n</p>\n\n<p>  c  </p>  ") == "a b c"


def test_a_link_keeps_its_text_not_its_url() -> None:
    html = '<p>see <a href="https://evil.example/phish" target="_blank">the doc</a></p>'
    assert message_text(html) == "see the doc"


def test_code_keeps_its_text() -> None:
    html = "<p>run <code>make test</code></p><pre><code>if a &lt; b:\n    go()</code></pre>"
    assert message_text(html) == "run make test if a < b: go()"


def test_comments_and_declarations_are_dropped() -> None:
    assert message_text("<!DOCTYPE html><!-- hidden --><p>shown</p><?php x ?>") == "shown"


def test_an_inline_image_adds_nothing_to_text() -> None:
    assert message_text('<p>look <img src="https://x/cat.png" alt="a cat"> here</p>') == (
        "look here"
    )


@pytest.mark.parametrize(
    ("html", "label"),
    [
        ('<p><img src="https://x/cat.png"></p>', "📷 Photo"),
        ('<video src="https://x/a.mp4"></video>', "🎥 Video"),
        ('<p><audio src="https://x/a.ogg"></audio></p>', "🎵 Audio"),
        ('<p><video src="v"></video><img src="i"></p>', "🎥 Video"),
    ],
)
def test_a_message_of_only_media_is_its_label(html: str, label: str) -> None:
    assert message_text(html) == label


def test_the_callers_media_label_is_the_text_of_an_empty_message() -> None:
    assert message_text("<p></p>", media="📄 PDF") == "📄 PDF"
    assert message_text("", media="📎 File") == "📎 File"
    assert message_text("<p><img src=x></p>", media="📄 PDF") == "📄 PDF"
    assert message_text("<p>the report</p>", media="📄 PDF") == "the report"


def test_an_empty_message_is_empty() -> None:
    assert message_text("") == ""
    assert message_text("<p><br></p>") == ""


@pytest.mark.parametrize("label", MEDIA_LABELS)
def test_media_labels_pass_through_unchanged(label: str) -> None:
    assert message_text(label) == label


def test_control_and_format_characters_are_removed_as_shown_does() -> None:
    assert message_text("<p>a\x00b\x1b[31m c\u202ed\u200b e\x07</p>") == "ab[31m cd e"


def test_a_less_than_sign_in_text_stays() -> None:
    assert message_text("a < b and 3<4") == "a < b and 3<4"


def test_a_decoded_tag_is_never_a_tag() -> None:
    result = message_text("<p>&lt;b&gt;bold&lt;/b&gt; &lt;img src=x onerror=alert(1)&gt;</p>")
    assert result == f"{ANGLE}b>bold{ANGLE}/b> {ANGLE}img src=x onerror=alert(1)>"
    assert not OPENS_TAG.search(result)


def test_a_tag_left_open_at_the_end_is_not_text() -> None:
    assert message_text("<p>hello</p><a href='x") == "hello"
    assert message_text("hello <!-- never closed") == "hello"


def test_escaping_for_a_markup_reader_is_left_to_the_notifier() -> None:
    assert message_text("<p>AT&amp;T &gt; 3</p>") == "AT&T > 3"


# -- cutting ---------------------------------------------------------------------------------------


def test_the_default_limit() -> None:
    result = message_text("<p>" + "word " * 100 + "</p>")
    assert len(result) <= TEXT_SHOWN
    assert result.endswith(ELLIPSIS)


def test_long_text_is_cut_on_a_word_boundary() -> None:
    assert message_text("<p>the quick brown fox jumps</p>", 16) == "the quick brown…"
    assert message_text("<p>the quick brown fox jumps</p>", 15) == "the quick…"
    assert message_text("<p>the quick brown fox jumps</p>", 20) == "the quick brown fox…"


def test_text_that_fits_is_not_cut() -> None:
    assert message_text("<p>the quick brown fox</p>", 19) == "the quick brown fox"


def test_one_long_word_is_cut_inside() -> None:
    result = message_text("see https://example.com/a/very/long/path/to/something", 20)
    assert result == "see https://example…"


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_a_tiny_limit(limit: int) -> None:
    result = message_text("<p>hello world</p>", limit)
    assert len(result) <= limit
    assert result.endswith(ELLIPSIS)


def test_a_limit_of_nothing_is_nothing() -> None:
    assert message_text("<p>hello</p>", 0) == ""
    assert message_text("<p>hello</p>", -5) == ""


# -- the body --------------------------------------------------------------------------------------


def test_the_body_is_sender_colon_text() -> None:
    html = f"<p>{MENTION.format('bob', '@bob')} the build is green</p>"
    assert message_body("Ada Obi", html) == "Ada Obi: @bob the build is green"


def test_the_body_without_a_sender_is_the_text() -> None:
    assert message_body("", "<p>hi</p>") == "hi"
    assert message_body("\u202e\x00", "<p>hi</p>") == "hi"


def test_the_body_of_an_empty_message_is_the_sender() -> None:
    assert message_body("Ada", "<p></p>") == "Ada"
    assert message_body("Ada", "<p></p>", media="📷 Photo") == "Ada: 📷 Photo"


def test_the_body_is_bounded_and_so_is_the_sender() -> None:
    body = message_body("A" * 500, "<p>" + "word " * 500 + "</p>", 120)
    assert len(body) <= 120
    assert body.startswith("A" * (SENDER_SHOWN - 1) + ELLIPSIS + ": word")


def test_the_sender_is_never_markup() -> None:
    assert message_body("<b>Ada</b>", "<p>hi</p>") == f"{ANGLE}b>Ada{ANGLE}/b>: hi"


# -- hostile input ---------------------------------------------------------------------------------

HOSTILE = {
    "100,000 nested divs": "<div>" * 100_000 + "x" + "</div>" * 100_000,
    "100,000 nested mentions": '<span class="mention" data-label="a">' * 100_000,
    "100,000 unclosed tags": "<b>x " * 100_000,
    "10 MB of words": "word " * (MB // 5),
    "10 MB of one word": "a" * MB,
    "10 MB in one paragraph": "<p>" + "x" * MB + "</p>",
    "10 MB of entities": "&amp;" * (MB // 5),
    "10 MB of invalid entities": "&#xFFFFFFFFF;&bogus;&#;&" * (MB // 24),
    "10 MB of NULs": "\x00" * MB,
    "10 MB of control characters": "\x1b\x07\u202e\u200b" * (MB // 4),
    "10 MB of whitespace": " \n\t" * (MB // 3),
    "10 MB of less-than signs": "<" * MB,
    "10 MB of tag starts": "<a" * (MB // 2),
    "10 MB of end-tag starts": "</" * (MB // 2),
    "10 MB of declarations": "<!" * (MB // 2),
    "one tag of 10 MB never closed": "<a " + "x=1 " * (MB // 4),
    "a comment of 10 MB never closed": "<p>hi</p><!--" + "x" * MB,
    "a script of 10 MB never closed": "<p>hi</p><script>" + "x" * MB,
    "10 MB of line breaks": "<br>" * (MB // 4),
    "10 MB of empty mentions": '<span class="mention" data-label="a"></span>' * (MB // 44),
    "a mention label of 10 MB": '<span class="mention" data-label="' + "a" * MB + '"></span>',
}


@pytest.mark.parametrize("html", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_gives_bounded_well_formed_text(html: str) -> None:
    started = time.perf_counter()
    result = message_text(html, 80)
    elapsed = time.perf_counter() - started
    assert len(result) <= 80
    assert well_formed(result)
    assert not OPENS_TAG.search(result)
    assert elapsed < 2, "a loose guard: the work is bounded by read_limit, not by the input"


def test_deep_nesting_inside_the_read_limit_is_read_without_recursion() -> None:
    html = "<b>" * 8_000 + "deep" + "</b>" * 8_000
    assert len(html) < read_limit(TEXT_SHOWN)
    assert message_text(html) == "deep"


def test_reading_stops_at_the_read_limit() -> None:
    padding = "<b></b>" * (read_limit(TEXT_SHOWN) // 7 + 1)
    assert message_text(padding + "<p>too late</p>") == ""
    assert message_text("<p>early</p>" + padding + "<p>late</p>") == "early"
    assert read_limit(10_000) >= 10_000


def test_collecting_stops_once_past_the_limit() -> None:
    collector = text._Collector(50)
    with pytest.raises(text._Enough):
        collector.feed("<p>" + "word " * 100_000 + "</p>")
    assert 50 < len(collector.text()) <= 50 + len("word")


def test_one_huge_piece_of_padding_is_read_only_in_part() -> None:
    collector = text._Collector(50)
    with pytest.raises(text._Enough):
        collector.handle_data("\u200b" * MB + "late")
    assert collector.text() == ""


# -- properties ------------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<br>",
        "<b",
        "<",
        ">",
        "</",
        "<!--",
        "-->",
        "<script>",
        "</script>",
        "<style>",
        "</span>",
        MENTION.format("ada", "@ada"),
        MENTION.format("a<b>", ""),
        '<a href="https://x">',
        "</a>",
        "<img src=x>",
        "&lt;",
        "&gt;",
        "&amp;",
        "&#x27;",
        "&nbsp;",
        "&#0;",
        "&",
        " ",
        "\n",
        "\x00",
        "\u202e",
        "…",
    ]
)
HTMLISH = st.lists(st.one_of(FRAGMENTS, st.text(max_size=12)), max_size=40).map("".join)
LIMITS = st.integers(min_value=1, max_value=120)
#: Text without markup, entities or hidden characters.
PLAIN = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs"), blacklist_characters="<>&"),
    max_size=300,
)


@FUZZ
@given(html=HTMLISH, limit=LIMITS, media=st.sampled_from(["", *MEDIA_LABELS, "<b>x</b>"]))
def test_the_result_is_never_markup_and_always_bounded(html: str, limit: int, media: str) -> None:
    result = message_text(html, limit, media=media)
    assert not TAG_LIKE.search(result)
    assert not OPENS_TAG.search(result)
    assert len(result) <= limit
    assert well_formed(result)


@FUZZ
@given(sender=HTMLISH, html=HTMLISH, limit=LIMITS)
def test_the_body_is_never_markup_and_always_bounded(sender: str, html: str, limit: int) -> None:
    result = message_body(sender, html, limit)
    assert not OPENS_TAG.search(result)
    assert len(result) <= limit
    assert well_formed(result)


@FUZZ
@given(plain=PLAIN)
def test_plain_text_survives_but_for_whitespace(plain: str) -> None:
    assert message_text(plain, 10_000) == " ".join(plain.split())


@FUZZ
@given(plain=PLAIN, limit=LIMITS)
def test_the_result_of_plain_text_is_its_own_result(plain: str, limit: int) -> None:
    once = message_text(plain, limit)
    assert message_text(once, limit) == once


@FUZZ
@given(plain=PLAIN, limit=LIMITS)
def test_a_cut_keeps_the_words_before_it(plain: str, limit: int) -> None:
    result = message_text(plain, limit)
    collapsed = " ".join(plain.split())
    if result == collapsed:
        return
    assert result.endswith(ELLIPSIS)
    assert collapsed.startswith(result.removesuffix(ELLIPSIS))
