"""The edges of issue 14, fuzzed: what is kept of server input (plain ids, bounded state), what
is shown (no hidden characters, one line, bounded), and that no server text can produce the title
of one of the app's own notices.

Bounded and derandomized in CI like tests/security/test_fuzz.py (settings in
tests/support/fuzzing.py).
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.constants import APP_NAME
from app.core.api import parse_organisations, parse_session
from app.core.delivery import _Missed, pause_summary, summary
from app.core.policy import NotificationPolicy
from app.errors import MalformedResponse
from app.models import Notice, Organisation
from app.untrusted import is_plain_id, organisation_labels, own_title, shown
from tests.support.fuzzing import FUZZ

HIDDEN = {"Cc", "Cf", "Cs"}

#: Text that hostile servers and users like: the app's name in other cases, widths and with
#: hidden characters inside, bidi controls, zero-width and odd whitespace.
tricky = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("Telex Start·-#: ")),
        st.sampled_from(["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\x1b", "\x07", "\n"]),
        st.sampled_from(["\r", "\t", "\u00a0", "\u2028", "\u3000", "\ud800", "\u0301", "\uff34"]),
        st.characters(),
    ),
    max_size=40,
)
names = st.one_of(
    tricky,
    st.builds(lambda a, b: a + APP_NAME + b, tricky, tricky),
    st.sampled_from([APP_NAME, APP_NAME.upper(), f"{APP_NAME} · connection", f" {APP_NAME}"]),
)


def folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def is_clean(text: str) -> bool:
    return (
        not any(unicodedata.category(c) in HIDDEN for c in text) and " ".join(text.split()) == text
    )


# -- shown text ------------------------------------------------------------------------------


@FUZZ
@given(st.text(), st.integers(min_value=1, max_value=300))
def test_shown_text_is_one_clean_bounded_line(text: str, limit: int):
    result = shown(text, limit)
    assert is_clean(result)
    assert len(result) <= limit
    assert shown(result, limit) == result


@FUZZ
@given(st.text())
def test_plain_ids_are_what_the_main_app_and_channel_names_need(text: str):
    if is_plain_id(text):
        assert 0 < len(text) <= 128
        assert not text.startswith("-")
        assert text.isascii()
        assert not any(c.isspace() or c in "/\\\"'=" for c in text)


# -- titles: the app's own cannot be forged ---------------------------------------------------

dm_payload = st.fixed_dictionaries(
    {
        "notification_type": st.just("unread_thread_change"),
        "section": st.one_of(
            st.sampled_from(["dm_channels_section", "channels_section", "agent_channels_section"]),
            tricky,
        ),
        "data": st.fixed_dictionaries(
            {
                "channel_id": st.just("c-1"),
                "thread_count": st.integers(min_value=1, max_value=5),
            },
            optional={"name": names, "username": names, "preview_message": names},
        ),
    }
)
org_lists = st.lists(
    st.builds(Organisation, st.sampled_from(["org-1", "org-2", "org-3"]), names),
    min_size=1,
    max_size=3,
    unique_by=lambda o: o.id,
)


@FUZZ
@given(org_lists, dm_payload)
def test_no_server_input_produces_a_title_of_the_apps_own(
    orgs: list[Organisation], payload: dict[str, Any]
):
    policy = NotificationPolicy({o.id: o for o in orgs})
    notice = policy.decide(payload, org_id=orgs[0].id)
    assert isinstance(notice, Notice)
    assert not folded(notice.title).startswith(folded(APP_NAME)), notice.title
    assert is_clean(notice.title)
    assert is_clean(notice.body)
    # ...while every notice the app makes of such news does start with its name
    made = [
        summary([notice, notice]),
        pause_summary([_Missed(1, notice)]),
        pause_summary([_Missed(1, notice), _Missed(2, notice)]),
    ]
    assert all(n.title.startswith(own_title()) for n in made)


def test_the_app_notices_use_own_titles():
    assert own_title() == APP_NAME
    assert own_title("connection") == f"{APP_NAME} · connection"
    fake = Notice(key="k", title="#x", body="b")
    assert summary([fake]).title.startswith(APP_NAME)


@FUZZ
@given(st.lists(st.builds(Organisation, st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True), names)))
def test_organisation_labels_never_look_alike(orgs: list[Organisation]):
    unique = list({o.id: o for o in orgs}.values())
    labels = organisation_labels(unique)
    assert set(labels) == {o.id for o in unique}
    assert len({folded(label) for label in labels.values()}) == len(unique)
    assert all(is_clean(label) for label in labels.values())


# -- what is kept ----------------------------------------------------------------------------

conversation_ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True),
    st.text(max_size=200),
    st.integers(),
    st.none(),
)


@FUZZ
@given(
    st.lists(
        st.tuples(
            conversation_ids,
            st.integers(min_value=0, max_value=3),
            st.one_of(st.none(), st.sampled_from(["org-1", "org-2", ""]), st.integers()),
        ),
        max_size=60,
    )
)
def test_policy_state_holds_plain_ids_only_and_stays_bounded(
    pushes: list[tuple[Any, int, Any]],
):
    policy = NotificationPolicy({"org-1": Organisation("org-1", "Acme")}, kept=5)
    for conversation, count, claimed in pushes:
        data: dict[str, Any] = {"channels_id": conversation, "thread_count": count}
        if claimed is not None:
            data["organisation_id"] = claimed
        payload = {"notification_type": "unread_thread_change", "data": data}
        notice = policy.decide(payload, org_id="org-1")
        if isinstance(notice, Notice):
            assert notice.org_id == "org-1"
            assert is_plain_id(notice.channel_id)
            assert claimed in ("", "org-1") or claimed is None
    state = policy._counts  # the bound is the property under test
    assert len(state) <= 5
    assert all(key.startswith("org-1/") and is_plain_id(key[6:]) for key in state)
    assert all(counts.threads or counts.mentions for counts in state.values())


# -- REST edge ---------------------------------------------------------------------------------

token_values = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50),
    st.integers(),
    st.none(),
    st.just("a" * 8193),
)


@FUZZ
@given(token_values, token_values, st.one_of(st.text(max_size=140), st.integers()))
def test_a_session_either_is_refused_or_holds_header_safe_tokens(
    access: Any, notification: Any, user_id: Any
):
    data = {"access_token": access, "notification_token": notification, "user": {"id": user_id}}
    try:
        session = parse_session(data, "a@b.c")
    except MalformedResponse:
        return
    for token in (session.access_token, session.notification_token):
        assert 0 < len(token) <= 8192
        assert all("\x21" <= c <= "\x7e" for c in token)
    assert is_plain_id(session.user.id)


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {"id": st.one_of(st.text(max_size=140), st.integers()), "name": names}
        ),
        max_size=8,
    )
)
def test_organisations_kept_have_plain_ids_and_clean_names(entries: list[dict[str, Any]]):
    for org in parse_organisations(entries):
        assert is_plain_id(org.id)
        assert org.name
        assert is_clean(org.name)


@pytest.mark.parametrize("size", [100_000, 4 * 1024 * 1024])
def test_shown_reads_a_bounded_prefix_of_huge_text(size: int):
    """A 4 MB name costs what a 2 KB one does (the title is at most 100 characters)."""
    text = "\u200b" * size + "visible"
    assert shown(text, 100) == ""
    assert shown("x" * size, 100) == "x" * 99 + "…"
