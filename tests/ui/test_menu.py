"""The tray's labels, flags, icon and tooltip for every state, and how events change the state."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app.events import (
    ConnectionPhase,
    ConversationRead,
    LoginRequired,
    NotificationClicked,
    Notified,
    PauseChanged,
    ShowError,
    SignedIn,
    StateChanged,
    UpdateAvailable,
)
from app.models import Notice, NoticeKind, Organisation
from app.ui.menu import (
    RECENT_MAX,
    RECENT_SHOWN,
    RECENT_SLOW_TICK_MS,
    RECENT_TICK_MS,
    TOOLTIP_MAX,
    Action,
    ClearRecent,
    Command,
    IconKind,
    MenuEntry,
    OpenRecent,
    PauseChoice,
    PauseNotifications,
    ResumeNotifications,
    Separator,
    ToggleOrganisation,
    TrayState,
    age_text,
    apply_event,
    icon_kind,
    main_app_opened,
    menu_entries,
    muted_set,
    notice_shown,
    pause_end,
    pause_text,
    recent_aged,
    recent_cleared,
    recent_notice,
    recent_refresh_ms,
    start_at_login_set,
    status_line,
    tooltip,
    tray_view,
    update_checks_set,
)

UNREAD = ("acme/general",)  # one notification of one conversation
EMAIL = "ada@example.com"
ORG_NOTICE = Notice(key="c1", title="general", body="3 unread threads", org_id="org-1")
TEST_NOTICE = Notice(key="test", title="Telex Start", body="Notifications are working.")


def state(phase: ConnectionPhase, **changes: object) -> TrayState:
    return dataclasses.replace(TrayState(phase=phase, email=EMAIL), **changes)  # type: ignore[arg-type]


def entries_by_command(s: TrayState) -> dict[Action, MenuEntry]:
    return {
        e.command: e for e in menu_entries(s) if isinstance(e, MenuEntry) and e.command is not None
    }


def submenu(s: TrayState, label: str) -> tuple[MenuEntry, ...]:
    (entry,) = [e for e in menu_entries(s) if isinstance(e, MenuEntry) and e.label == label]
    assert entry.command is None  # a submenu is opened, not run
    assert entry.submenu is not None
    return entry.submenu


@pytest.mark.parametrize(
    ("tray_state", "expected"),
    [
        (TrayState(), "Signed out"),
        (TrayState(phase=ConnectionPhase.SIGNING_IN), "Signing in…"),
        (state(ConnectionPhase.CONNECTING), f"Signed in as {EMAIL} — connecting…"),
        (state(ConnectionPhase.CONNECTED), f"Signed in as {EMAIL} — connected"),
        (
            state(ConnectionPhase.RECONNECTING, retry_in=4.2),
            f"Signed in as {EMAIL} — reconnecting in 5 s",
        ),
        (
            state(ConnectionPhase.RECONNECTING, retry_in=0.4),
            f"Signed in as {EMAIL} — reconnecting…",
        ),
        (state(ConnectionPhase.RECONNECTING), f"Signed in as {EMAIL} — reconnecting…"),
        (state(ConnectionPhase.GAVE_UP), f"Signed in as {EMAIL} — not connected"),
        (state(ConnectionPhase.CONNECTED, email=None), "Signed in — connected"),
    ],
)
def test_status_line(tray_state: TrayState, expected: str) -> None:
    assert status_line(tray_state) == expected


def test_the_status_line_is_the_first_entry_and_disabled() -> None:
    first = menu_entries(state(ConnectionPhase.CONNECTED))[0]
    assert first == MenuEntry(f"Signed in as {EMAIL} — connected", None, enabled=False)


def test_menu_when_signed_out_offers_login_not_logout() -> None:
    entries = entries_by_command(TrayState())
    assert entries[Command.LOGIN].visible
    assert entries[Command.LOGIN].enabled
    assert not entries[Command.LOGOUT].visible


def test_menu_while_signing_in_shows_login_disabled() -> None:
    entries = entries_by_command(TrayState(phase=ConnectionPhase.SIGNING_IN))
    assert entries[Command.LOGIN].visible
    assert not entries[Command.LOGIN].enabled
    assert not entries[Command.LOGOUT].visible


@pytest.mark.parametrize(
    "phase",
    [
        ConnectionPhase.CONNECTING,
        ConnectionPhase.CONNECTED,
        ConnectionPhase.RECONNECTING,
        ConnectionPhase.GAVE_UP,
    ],
)
def test_menu_when_signed_in_offers_logout_not_login(phase: ConnectionPhase) -> None:
    entries = entries_by_command(state(phase))
    assert not entries[Command.LOGIN].visible
    assert entries[Command.LOGOUT].visible
    assert entries[Command.LOGOUT].enabled


def test_menu_order_labels_and_the_default_action() -> None:
    lines = menu_entries(state(ConnectionPhase.CONNECTED))
    labels = [line.label if isinstance(line, MenuEntry) else "---" for line in lines]
    assert labels == [
        f"Signed in as {EMAIL} — connected",
        "---",
        "Login",
        "Reconnect",
        "Log out",
        "---",
        "Open Main App",
        "Close Main App",
        "Recent notifications",
        "Clicks open the desktop app",
        "---",
        "Pause notifications",
        "Resume notifications",
        "Notify for organisations",
        "Test Notifications",
        "Start at login",
        "Open log folder",
        "Check for updates",
        "Get the update…",
        "---",
        "Exit",
    ]
    defaults = [line for line in lines if isinstance(line, MenuEntry) and line.default]
    assert [d.command for d in defaults] == [Command.OPEN_MAIN_APP]
    assert all(isinstance(line, Separator) for line in lines if not isinstance(line, MenuEntry))


@pytest.mark.parametrize(
    ("tray_state", "kind"),
    [
        (TrayState(), IconKind.SIGNED_OUT),
        (TrayState(phase=ConnectionPhase.SIGNING_IN), IconKind.SIGNED_OUT),
        (state(ConnectionPhase.CONNECTING), IconKind.CONNECTING),
        (state(ConnectionPhase.CONNECTED), IconKind.CONNECTED),
        (state(ConnectionPhase.RECONNECTING, retry_in=3), IconKind.OFFLINE),
        (state(ConnectionPhase.GAVE_UP), IconKind.OFFLINE),
        (state(ConnectionPhase.CONNECTED, unread_keys=UNREAD * 2), IconKind.UNREAD),
        (state(ConnectionPhase.CONNECTING, unread_keys=UNREAD * 1), IconKind.UNREAD),
        # a broken connection outranks news: no more news can arrive
        (state(ConnectionPhase.RECONNECTING, unread_keys=UNREAD * 1), IconKind.OFFLINE),
    ],
)
def test_icon_kind(tray_state: TrayState, kind: IconKind) -> None:
    assert icon_kind(tray_state) is kind


def test_tooltip_names_the_app_the_state_and_unread_count() -> None:
    assert tooltip(TrayState()) == "Telex Start: Signed out"
    assert tooltip(state(ConnectionPhase.CONNECTED, unread_keys=UNREAD * 1)) == (
        f"Telex Start: Signed in as {EMAIL} — connected (1 new notification)"
    )
    assert tooltip(state(ConnectionPhase.CONNECTED, unread_keys=UNREAD * 3)).endswith(
        "(3 new notifications)"
    )


def test_tooltip_fits_windows_limit() -> None:
    long_email = "a" * 150 + "@example.com"
    text = tooltip(state(ConnectionPhase.CONNECTED, email=long_email))
    assert len(text) == TOOLTIP_MAX
    assert text.endswith("…")


def test_sign_in_sequence_of_events() -> None:
    s = TrayState()
    s = apply_event(s, StateChanged(ConnectionPhase.SIGNING_IN, f"signing in as {EMAIL}"))
    assert s.phase is ConnectionPhase.SIGNING_IN
    s = apply_event(s, SignedIn(EMAIL, "Ada", (Organisation("org-1", "Acme"),)))
    s = apply_event(s, StateChanged(ConnectionPhase.CONNECTING, "opening the push connection"))
    assert (s.phase, s.email) == (ConnectionPhase.CONNECTING, EMAIL)
    s = apply_event(s, StateChanged(ConnectionPhase.CONNECTED, "connected, 1 of 1 channel(s) live"))
    assert s.phase is ConnectionPhase.CONNECTED
    s = apply_event(
        s, StateChanged(ConnectionPhase.RECONNECTING, "the push connection closed", 2.5)
    )
    assert (s.phase, s.retry_in) == (ConnectionPhase.RECONNECTING, 2.5)
    s = apply_event(s, StateChanged(ConnectionPhase.CONNECTED, "connected"))
    assert s.retry_in is None


def test_signed_out_forgets_everything() -> None:
    s = state(ConnectionPhase.CONNECTED, unread_keys=UNREAD * 4)
    assert apply_event(s, StateChanged(ConnectionPhase.SIGNED_OUT, "signed out")) == TrayState()


def test_a_connection_that_gave_up_says_so_and_offers_reconnect() -> None:
    s = apply_event(
        state(ConnectionPhase.CONNECTED),
        StateChanged(ConnectionPhase.GAVE_UP, "The push server refused the connection"),
    )
    assert status_line(s) == f"Signed in as {EMAIL} — not connected"
    assert icon_kind(s) is IconKind.OFFLINE
    reconnect = entries_by_command(s)[Command.RECONNECT]
    assert (reconnect.label, reconnect.visible, reconnect.enabled) == ("Reconnect", True, True)
    assert entries_by_command(s)[Command.LOGOUT].visible  # still signed in
    assert s.paused is None  # not the user's pause


@pytest.mark.parametrize("phase", [p for p in ConnectionPhase if p is not ConnectionPhase.GAVE_UP])
def test_reconnect_is_offered_only_after_the_connection_gave_up(phase: ConnectionPhase) -> None:
    assert not entries_by_command(state(phase))[Command.RECONNECT].visible


def test_only_delivered_organisation_notices_count_as_unread() -> None:
    s = state(ConnectionPhase.CONNECTED)
    s = apply_event(s, Notified(ORG_NOTICE, delivered=True))
    s = apply_event(s, Notified(ORG_NOTICE, delivered=False))
    s = apply_event(s, Notified(TEST_NOTICE, delivered=True))
    assert s.unread == 1


def test_opening_the_main_app_clears_unread() -> None:
    s = apply_event(state(ConnectionPhase.CONNECTED), Notified(ORG_NOTICE, delivered=True))
    assert icon_kind(s) is IconKind.UNREAD
    s = main_app_opened(s)
    assert s.unread == 0
    assert icon_kind(s) is IconKind.CONNECTED


def test_events_the_tray_does_not_show_leave_the_state_alone() -> None:
    s = state(ConnectionPhase.CONNECTED, unread_keys=UNREAD * 1)
    assert apply_event(s, ShowError("t", "m")) is s
    assert apply_event(s, LoginRequired("expired", EMAIL)) is s


def test_views_compare_by_value() -> None:
    assert tray_view(state(ConnectionPhase.CONNECTED)) == tray_view(
        state(ConnectionPhase.CONNECTED)
    )
    assert tray_view(state(ConnectionPhase.CONNECTED)) != tray_view(
        state(ConnectionPhase.CONNECTED, unread_keys=UNREAD * 1)
    )


def test_start_at_login_is_a_check_item_that_shows_the_os_state() -> None:
    assert entries_by_command(TrayState())[Command.START_AT_LOGIN].checked is False
    on = start_at_login_set(state(ConnectionPhase.CONNECTED), True)
    assert entries_by_command(on)[Command.START_AT_LOGIN].checked is True
    check_items = {Command.START_AT_LOGIN, Command.CHECK_FOR_UPDATES, Command.OPEN_IN_DESKTOP_APP}
    others = [e for c, e in entries_by_command(on).items() if c not in check_items]
    assert all(entry.checked is None for entry in others)


def test_clicks_open_the_desktop_app_is_a_check_item_off_by_default() -> None:
    assert entries_by_command(TrayState())[Command.OPEN_IN_DESKTOP_APP].checked is False
    on = dataclasses.replace(TrayState(), open_in_desktop_app=True)
    assert entries_by_command(on)[Command.OPEN_IN_DESKTOP_APP].checked is True


def test_signing_out_keeps_start_at_login() -> None:
    on = start_at_login_set(state(ConnectionPhase.CONNECTED, unread_keys=UNREAD * 2), True)
    assert apply_event(on, StateChanged(ConnectionPhase.SIGNED_OUT, "signed out")) == TrayState(
        start_at_login=True
    )


OFFER = UpdateAvailable("9.0", "https://example.com/releases/v9.0")


@pytest.mark.parametrize(
    "tray_state",
    [
        TrayState(),
        state(ConnectionPhase.CONNECTED),
        state(ConnectionPhase.GAVE_UP),
        TrayState(update=OFFER),
    ],
)
def test_every_command_of_the_menu_is_reachable_from_it(tray_state: TrayState) -> None:
    """Menu, menu window and keyboard navigation all rely on this: visible entries carry every
    command but the ones that are not menu entries."""
    shown = {
        e.command
        for e in menu_entries(tray_state)
        if isinstance(e, MenuEntry) and e.visible and isinstance(e.command, Command)
    }
    hidden_by_design = {Command.SHOW_WINDOW, Command.ACTIVATE}
    if tray_state.update is None:
        hidden_by_design.add(Command.GET_UPDATE)  # offered only when there is one
    if tray_state.phase is not ConnectionPhase.GAVE_UP:
        hidden_by_design.add(Command.RECONNECT)  # offered only when the connection gave up
    login_or_logout = {Command.LOGOUT} if tray_state.signed_in else {Command.LOGIN}
    assert shown == set(Command) - hidden_by_design - (
        {Command.LOGIN, Command.LOGOUT} - login_or_logout
    )


def test_a_newer_release_is_offered_while_checks_are_on() -> None:
    offered = apply_event(state(ConnectionPhase.CONNECTED), OFFER)
    entry = entries_by_command(offered)[Command.GET_UPDATE]
    assert (entry.label, entry.visible) == ("Get Telex Start 9.0…", True)
    assert entries_by_command(offered)[Command.CHECK_FOR_UPDATES].checked is True
    # Signing out keeps the offer and the choice: they are about the app, not the account.
    signed_out = apply_event(offered, StateChanged(ConnectionPhase.SIGNED_OUT, "signed out"))
    assert signed_out.update == OFFER

    off = update_checks_set(offered, False)
    assert entries_by_command(off)[Command.CHECK_FOR_UPDATES].checked is False
    assert not entries_by_command(off)[Command.GET_UPDATE].visible
    assert apply_event(off, OFFER) == off, "an offer arriving after switching off is dropped"
    assert update_checks_set(off, True).update is None


# -- pause and mute ------------------------------------------------------------------------------

ORGS = (Organisation("o2", "zeta"), Organisation("o1", "Acme"))
AT = datetime(2026, 11, 28, 14, 5, tzinfo=timezone(timedelta(hours=1)))


def visible_actions(s: TrayState) -> set[Action]:
    """Every action a user can pick, submenus included."""
    found: set[Action] = set()
    for line in menu_entries(s):
        if isinstance(line, MenuEntry) and line.visible:
            found.update(e.command for e in (line, *(line.submenu or ())) if e.command is not None)
    return found


def test_the_pause_submenu_offers_every_length_and_is_always_there() -> None:
    for s in (TrayState(), state(ConnectionPhase.CONNECTED)):
        entries = submenu(s, "Pause notifications")
        assert [(e.label, e.command) for e in entries] == [
            ("For 30 minutes", PauseNotifications(PauseChoice.MINUTES_30)),
            ("For 1 hour", PauseNotifications(PauseChoice.HOUR_1)),
            ("Until 08:00", PauseNotifications(PauseChoice.MORNING)),
            ("Until I resume", PauseNotifications(PauseChoice.UNTIL_RESUMED)),
        ]
        assert all(e.enabled and e.checked is None for e in entries)


def test_resume_is_offered_only_while_paused_and_says_until_when() -> None:
    running = state(ConnectionPhase.CONNECTED)
    assert not entries_by_command(running)[ResumeNotifications()].visible
    paused = apply_event(running, PauseChanged(True, AT + timedelta(minutes=30), AT))
    resume = entries_by_command(paused)[ResumeNotifications()]
    assert resume.visible
    assert resume.label == "Resume notifications (paused until 14:35)"
    assert status_line(paused) == (
        f"Signed in as {EMAIL} — connected; notifications paused until 14:35"
    )
    assert "notifications paused until 14:35" in tooltip(paused)
    resumed = apply_event(paused, PauseChanged(False, None, AT))
    assert resumed == running


def test_the_organisations_submenu_checks_the_ones_that_notify() -> None:
    s = apply_event(state(ConnectionPhase.CONNECTED), SignedIn(EMAIL, "Ada", ORGS))
    s = muted_set(s, frozenset({"o2"}))
    entries = submenu(s, "Notify for organisations")
    assert [(e.label, e.command, e.checked) for e in entries] == [
        ("Acme", ToggleOrganisation("o1"), True),
        ("zeta", ToggleOrganisation("o2"), False),
    ]


def test_organisation_names_in_the_menu_are_one_clean_line() -> None:
    """I6: a server's organisation name cannot reorder text (RLO), hide characters or add
    lines to the menu."""
    orgs = (
        Organisation("o1", "Acme\u202eevil\u202c"),
        Organisation("o2", "Glo\u200bbex\n\nMuted: none"),
        Organisation("o3", "\u2066\u200b\n"),
        Organisation("o4", "x" * 500),
    )
    s = apply_event(state(ConnectionPhase.CONNECTED), SignedIn(EMAIL, "Ada", orgs))
    labels = [e.label for e in submenu(s, "Notify for organisations")]
    assert labels == ["Acmeevil", "Globex Muted: none", "o3", "x" * 59 + "…"]


def test_organisations_that_look_alike_are_told_apart_by_their_id() -> None:
    orgs = (
        Organisation("7d1c2e40-1111", "Acme"),
        Organisation("7d1c2e99-2222", "acme\u200b"),
        Organisation("b0", "Globex"),
    )
    s = apply_event(state(ConnectionPhase.CONNECTED), SignedIn(EMAIL, "Ada", orgs))
    entries = submenu(s, "Notify for organisations")
    assert [(e.label, e.command) for e in entries] == [
        ("Acme (7d1c2e4)", ToggleOrganisation("7d1c2e40-1111")),
        ("acme (7d1c2e9)", ToggleOrganisation("7d1c2e99-2222")),
        ("Globex", ToggleOrganisation("b0")),
    ]


def test_a_name_made_to_look_like_a_told_apart_label_gets_the_whole_id() -> None:
    orgs = (
        Organisation("7d1c2e40-1111", "Acme"),
        Organisation("7d1c2e99-2222", "Acme"),
        Organisation("b0", "Acme (7d1c2e4)"),
    )
    s = apply_event(state(ConnectionPhase.CONNECTED), SignedIn(EMAIL, "Ada", orgs))
    labels = [e.label for e in submenu(s, "Notify for organisations")]
    assert labels == ["Acme (7d1c2e4) (b0)", "Acme (7d1c2e40-1111)", "Acme (7d1c2e9)"]


def test_the_organisations_submenu_is_hidden_without_organisations() -> None:
    (entry,) = [
        e
        for e in menu_entries(state(ConnectionPhase.CONNECTED))
        if isinstance(e, MenuEntry) and e.label == "Notify for organisations"
    ]
    assert not entry.visible
    signed_out = apply_event(
        muted_set(
            apply_event(state(ConnectionPhase.CONNECTED), SignedIn(EMAIL, "Ada", ORGS)), frozenset()
        ),
        StateChanged(ConnectionPhase.SIGNED_OUT, "signed out"),
    )
    assert ToggleOrganisation("o1") not in visible_actions(signed_out)


def test_every_pause_and_organisation_action_is_reachable() -> None:
    s = apply_event(state(ConnectionPhase.CONNECTED), SignedIn(EMAIL, "Ada", ORGS))
    s = apply_event(s, PauseChanged(True, None, AT))
    assert visible_actions(s) >= {
        *(PauseNotifications(c) for c in PauseChoice),
        ResumeNotifications(),
        ToggleOrganisation("o1"),
        ToggleOrganisation("o2"),
    }


def test_signing_out_keeps_the_pause_and_the_muted_organisations() -> None:
    s = muted_set(state(ConnectionPhase.CONNECTED), frozenset({"o1"}))
    s = apply_event(s, PauseChanged(True, None, AT))
    out = apply_event(s, StateChanged(ConnectionPhase.SIGNED_OUT, "signed out"))
    assert out.muted == frozenset({"o1"})
    assert out.paused == "until resumed"
    assert status_line(out) == "Signed out; notifications paused until resumed"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (PauseChoice.MINUTES_30, AT + timedelta(minutes=30)),
        (PauseChoice.HOUR_1, AT + timedelta(hours=1)),
        (PauseChoice.MORNING, datetime(2026, 11, 29, 8, 0, tzinfo=AT.tzinfo)),
        (PauseChoice.UNTIL_RESUMED, None),
    ],
)
def test_pause_end(choice: PauseChoice, expected: datetime | None) -> None:
    assert pause_end(choice, AT) == expected


def test_until_tomorrow_from_just_before_midnight_is_the_next_morning() -> None:
    late = datetime(2026, 12, 31, 23, 59, tzinfo=AT.tzinfo)
    assert pause_end(PauseChoice.MORNING, late) == datetime(2027, 1, 1, 8, tzinfo=AT.tzinfo)


@pytest.mark.parametrize(
    ("chosen", "ends"),
    [
        # after midnight the next 08:00 is today's, not tomorrow's (7 h, not 31 h)
        (datetime(2027, 1, 1, 0, 0), datetime(2027, 1, 1, 8, 0)),
        (datetime(2027, 1, 1, 1, 0), datetime(2027, 1, 1, 8, 0)),
        (datetime(2027, 1, 1, 7, 59), datetime(2027, 1, 1, 8, 0)),
        # at 08:00 itself the next one is a day away
        (datetime(2027, 1, 1, 8, 0), datetime(2027, 1, 2, 8, 0)),
    ],
)
def test_until_morning_is_the_next_eight_on_the_clock(chosen: datetime, ends: datetime) -> None:
    zone = timezone(timedelta(hours=1))
    end = pause_end(PauseChoice.MORNING, chosen.replace(tzinfo=zone))
    assert end == ends.replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("chosen", "hours"),
    [
        (datetime(2026, 3, 28, 22, 0), 9),  # clocks go forward in the night: an hour less
        (datetime(2026, 10, 24, 22, 0), 11),  # clocks go back: an hour more
        (datetime(2026, 10, 25, 1, 0), 8),  # after midnight, before the change at 03:00
    ],
)
def test_until_morning_across_a_dst_change_ends_at_eight_local(
    chosen: datetime, hours: int
) -> None:
    zone = ZoneInfo("Europe/Berlin")
    now = chosen.replace(tzinfo=zone)
    end = pause_end(PauseChoice.MORNING, now)
    assert end is not None
    assert (end.hour, end.minute) == (8, 0)
    assert end.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=hours)
    assert pause_text(end, now) in ("until 08:00", f"until {end:%a} 08:00")


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        (None, "until resumed"),
        (AT + timedelta(minutes=30), "until 14:35"),
        (datetime(2026, 11, 29, 8, 0, tzinfo=AT.tzinfo), "until Sun 08:00"),
        (datetime(2026, 12, 7, 8, 0, tzinfo=AT.tzinfo), "until Mon 7 Dec 08:00"),
        # a stored end in UTC is shown in the local time of the moment it was restored
        (datetime(2026, 11, 28, 14, 0, tzinfo=UTC), "until 15:00"),
    ],
)
def test_pause_text(until: datetime | None, expected: str) -> None:
    assert pause_text(until, AT) == expected


def test_summaries_count_as_unread_and_info_notices_do_not() -> None:
    s = state(ConnectionPhase.CONNECTED)
    summary = Notice(key="summary", title="5 conversations", body="", kind=NoticeKind.SUMMARY)
    gap = Notice(key="gap", title="Telex Start", body="gap", org_id="o1", kind=NoticeKind.INFO)
    s = apply_event(s, Notified(summary, delivered=True))
    s = apply_event(s, Notified(gap, delivered=True))
    assert s.unread == 1


def test_clicking_a_notification_clears_unread() -> None:
    s = apply_event(state(ConnectionPhase.CONNECTED), Notified(ORG_NOTICE, delivered=True))
    assert apply_event(s, NotificationClicked(ORG_NOTICE)).unread == 0


def test_a_conversation_read_elsewhere_takes_its_part_of_the_unread_mark() -> None:
    s = state(ConnectionPhase.CONNECTED)
    for key in ("acme/general", "acme/design", "acme/general"):
        s = apply_event(s, Notified(dataclasses.replace(ORG_NOTICE, key=key), delivered=True))
    assert s.unread == 3
    s = apply_event(s, ConversationRead("acme/general"))
    assert (s.unread, s.unread_keys) == (1, ("acme/design",))
    s = apply_event(s, ConversationRead("acme/design"))
    assert icon_kind(s) is IconKind.CONNECTED


def test_an_upgrade_is_no_new_unread_notification() -> None:
    s = apply_event(state(ConnectionPhase.CONNECTED), Notified(ORG_NOTICE, delivered=True))
    upgrade = dataclasses.replace(ORG_NOTICE, body="Ada Obi: look", upgrade=True)
    assert apply_event(s, Notified(upgrade, delivered=True)).unread == 1


# -- recent notifications ---------------------------------------------------------------------

T0 = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def news(conversation: str, body: str = "hi", *, upgrade: bool = False) -> Notified:
    notice = Notice(
        key=f"org-1/{conversation}",
        title=f"#{conversation} · Acme",
        body=body,
        org_id="org-1",
        channel_id=conversation,
        upgrade=upgrade,
    )
    return Notified(notice, delivered=True)


def shown_in_order(
    s: TrayState, *events: Notified, step: timedelta = timedelta(minutes=1)
) -> TrayState:
    for index, event in enumerate(events):
        s = notice_shown(apply_event(s, event), event, T0 + index * step)
    return s


def recent_submenu(s: TrayState) -> MenuEntry:
    (entry,) = [
        e for e in menu_entries(s) if isinstance(e, MenuEntry) and e.label == "Recent notifications"
    ]
    return entry


def test_recent_notifications_are_listed_newest_first_and_open_by_key() -> None:
    s = shown_in_order(state(ConnectionPhase.CONNECTED), news("a"), news("b"), news("c"))
    assert [e.key for e in s.recent] == ["org-1/c", "org-1/b", "org-1/a"]
    submenu = recent_submenu(s)
    assert submenu.visible
    assert [e.command for e in submenu.submenu or ()] == [
        OpenRecent("org-1/c"),
        OpenRecent("org-1/b"),
        OpenRecent("org-1/a"),
        ClearRecent(),
    ]
    assert (submenu.submenu or ())[-1].label == "Clear list"
    assert recent_notice(s, "org-1/b") == news("b").notice
    assert recent_notice(s, "org-1/gone") is None


def test_the_recent_list_keeps_the_last_ten() -> None:
    events = [news(f"c{i}") for i in range(RECENT_MAX + 3)]
    s = shown_in_order(state(ConnectionPhase.CONNECTED), *events)
    assert len(s.recent) == RECENT_MAX
    assert [e.key for e in s.recent] == [f"org-1/c{i}" for i in range(12, 2, -1)]


def test_newer_news_moves_its_conversation_to_the_top_with_its_new_text_and_time() -> None:
    s = shown_in_order(
        state(ConnectionPhase.CONNECTED), news("a", "first"), news("b"), news("a", "second")
    )
    assert [e.key for e in s.recent] == ["org-1/a", "org-1/b"]
    assert s.recent[0].notice.body == "second"
    assert s.recent[0].at == T0 + timedelta(minutes=2)


def test_an_upgrade_replaces_its_entry_in_place_and_keeps_its_time() -> None:
    s = shown_in_order(
        state(ConnectionPhase.CONNECTED),
        news("a", "1 new message"),
        news("b"),
        news("a", "Ada: lunch?", upgrade=True),
    )
    assert [e.key for e in s.recent] == ["org-1/b", "org-1/a"]
    assert s.recent[1].notice.body == "Ada: lunch?"
    assert s.recent[1].at == T0
    assert s.unread == 2, "an upgrade is no new notification"
    # an upgrade whose entry is gone (cleared meanwhile) is listed as new
    s = notice_shown(recent_cleared(s), news("a", "x", upgrade=True), T0)
    assert [e.key for e in s.recent] == ["org-1/a"]


def test_only_shown_news_and_summaries_are_listed() -> None:
    summary = Notice(
        key="summary", title="Telex Start · 5 conversations", body="", kind=NoticeKind.SUMMARY
    )
    s = state(ConnectionPhase.CONNECTED)
    for event in (
        Notified(TEST_NOTICE, delivered=True),
        Notified(ORG_NOTICE, delivered=False),
        Notified(dataclasses.replace(ORG_NOTICE, kind=NoticeKind.INFO), delivered=True),
    ):
        s = notice_shown(s, event, T0)
    assert s.recent == ()
    assert not recent_submenu(s).visible, "no entries: no submenu"
    s = notice_shown(s, Notified(summary, delivered=True), T0)
    assert [e.key for e in s.recent] == ["summary"]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (T0, "just now"),
        (T0 - timedelta(seconds=59), "just now"),
        (T0 + timedelta(seconds=30), "just now"),  # a clock set back
        (T0 - timedelta(minutes=5), "5 min ago"),
        (T0 - timedelta(minutes=59, seconds=59), "59 min ago"),
        (T0 - timedelta(hours=2, minutes=50), "2 h ago"),
        (T0 - timedelta(hours=14, minutes=59), "14 h ago"),  # 00:01 today
        (T0 - timedelta(hours=15, minutes=1), "yesterday"),  # 23:59 yesterday
        (T0 - timedelta(days=3), "3 days ago"),
    ],
)
def test_age_text(at: datetime, expected: str) -> None:
    assert age_text(at, T0) == expected


def test_late_at_night_a_few_hours_are_not_yesterday() -> None:
    night = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
    assert age_text(night - timedelta(hours=3), night) == "3 h ago"
    assert age_text(night - timedelta(hours=7), night) == "yesterday"


def test_recent_labels_say_who_what_and_how_long_ago_as_of_the_states_time() -> None:
    s = shown_in_order(
        state(ConnectionPhase.CONNECTED), news("a", "Ada: lunch?"), news("b", "Bob: ok")
    )
    s = recent_aged(s, T0 + timedelta(minutes=6))
    assert [e.label for e in recent_submenu(s).submenu or ()] == [
        "#b · Acme: Bob: ok — 5 min ago",
        "#a · Acme: Ada: lunch? — 6 min ago",
        "Clear list",
    ]


def test_recent_labels_are_one_short_line_that_always_ends_in_its_age() -> None:
    long = Notice(
        key="o/c",
        title="A very long conversation name that goes on and on\nExit",
        body="line one\nline two \u202e" + "word " * 100,
        org_id="o",
    )
    s = notice_shown(state(ConnectionPhase.CONNECTED), Notified(long, delivered=True), T0)
    (entry, _clear) = recent_submenu(s).submenu or ()
    assert "\n" not in entry.label
    assert "\u202e" not in entry.label
    text, age = entry.label.rsplit(" — ", 1)
    assert age == "just now"
    assert len(text) <= RECENT_SHOWN
    # a notification named like a command still reads as a notification
    exit_like = Notice(key="o/x", title="Exit", body="", org_id="o")
    s = notice_shown(s, Notified(exit_like, delivered=True), T0)
    labels = [e.label for e in recent_submenu(s).submenu or ()]
    assert labels[0] == "Exit — just now"


def test_signing_out_or_in_again_forgets_the_recent_list_and_clear_empties_it() -> None:
    s = shown_in_order(state(ConnectionPhase.CONNECTED), news("a"), news("b"))
    assert recent_cleared(s).recent == ()
    assert apply_event(s, StateChanged(ConnectionPhase.SIGNED_OUT, "signed out")) == TrayState()
    assert apply_event(s, SignedIn(EMAIL, "Ada", ())).recent == ()


def test_the_ages_are_refreshed_only_while_there_is_something_to_show() -> None:
    s = state(ConnectionPhase.CONNECTED)
    assert recent_refresh_ms(s) is None
    s = shown_in_order(s, news("a"))
    assert recent_refresh_ms(s) == RECENT_TICK_MS
    later = recent_aged(s, T0 + timedelta(hours=1))
    assert recent_refresh_ms(later) == RECENT_SLOW_TICK_MS
    fresh = news("b")
    assert recent_refresh_ms(notice_shown(later, fresh, T0 + timedelta(hours=1))) == RECENT_TICK_MS
    assert recent_refresh_ms(recent_cleared(s)) is None


def test_the_recent_list_keeps_message_text_out_of_reprs() -> None:
    s = shown_in_order(state(ConnectionPhase.CONNECTED), news("a", "secret lunch plans"))
    assert "secret" not in repr(s)
    assert "secret" not in repr(OpenRecent(s.recent[0].key))
