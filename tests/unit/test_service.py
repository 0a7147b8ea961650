"""The session service's own edges (the flow itself is tested end to end in tests/e2e)."""

from __future__ import annotations


def test_a_state_reason_from_the_server_is_shown_on_one_clean_line(tmp_path) -> None:
    """A close reason or an error message is the server's text: the tray shows it (and the
    log writes it) without bidi overrides, control characters or line breaks, shortened."""
    from app.config import Settings
    from app.core.service import STATE_DETAIL_SHOWN, TelexService
    from app.events import ConnectionPhase, StateChanged
    from app.notify.log_only import LogNotifier

    events: list[object] = []
    service = TelexService(
        Settings(config_dir=tmp_path, log_dir=tmp_path), LogNotifier(), events.append
    )
    service._state(
        ConnectionPhase.CONNECTING, "closed: Ada\u202egpj.exe\n\x1b[2Jsigned in" + "x" * 999
    )
    (event,) = events
    assert isinstance(event, StateChanged)
    assert event.detail.startswith("closed: Adagpj.exe [2Jsigned in")
    assert len(event.detail) == STATE_DETAIL_SHOWN


async def test_mark_as_read_makes_one_read_call_for_its_conversation_and_nothing_pops_after(
    tmp_path,
) -> None:
    """Against the local stack: the user's "Mark as read" is the web app's own read call
    (events §2.2), exactly once, for the notice's conversation (a channel, a DM, a group DM); the
    server's 0-count push that follows withdraws it, and nothing new is shown."""
    import asyncio
    import dataclasses

    from app.config import Settings
    from app.core.service import TelexService
    from app.events import ConnectionPhase, ConversationRead, StateChanged
    from devstack.stack import LocalStack
    from devstack.telex_api import API_PREFIX
    from tests.support.fakes import RecordingNotifier

    async def until(condition, what: str) -> None:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.02)

    async with LocalStack() as local:
        sim, email = local.simulator, local.account.email
        org = sim.orgs_of(email)[0]
        other = next(u for u in sim.members_of(org.id) if u.email != email)
        settings = dataclasses.replace(
            Settings(config_dir=tmp_path, log_dir=tmp_path, coalesce_window=0.0),
            api_url=local.api_url,
            ws_url=local.ws_url,
        )
        notifier, events = RecordingNotifier("desktop"), list[object]()
        async with TelexService(settings, notifier, events.append) as service:
            await service.sign_in(email, local.account.password)
            await until(
                lambda: any(
                    isinstance(e, StateChanged) and e.phase is ConnectionPhase.CONNECTED
                    for e in events
                ),
                "connected",
            )
            assert sim.read_requests == []  # signing in and connecting read nothing

            async def marked(send, path: str) -> None:
                read_before, shown_before = len(sim.read_requests), len(notifier.sent)
                await send()
                await until(lambda: len(notifier.sent) > shown_before, "shown")
                await asyncio.sleep(0.5)  # the message's second event, if any
                notice = notifier.sent[-1]
                shown = len(notifier.sent)
                assert await service.mark_read(notice) is True
                assert sim.read_requests[read_before:] == [
                    ("GET", API_PREFIX + path.format(notice.channel_id))
                ]
                await until(lambda: ConversationRead(notice.key) in events, "read pushed")
                await until(lambda: notice.key in notifier.withdrawn, "withdrawn")
                await asyncio.sleep(0.5)
                assert len(notifier.sent) == shown  # the 0-count push pops nothing
                assert len(sim.read_requests) == read_before + 1

            await marked(
                lambda: sim.send_message(other.email, org.id, "hello", channel="general"),
                "/threads/channels/{}",
            )
            await marked(
                lambda: sim.send_message(other.email, org.id, "psst", dm_to=email),
                "/dms/channels/{}/threads",
            )
            third = sim.add_member(org.id, "Lena Park")
            await marked(
                lambda: sim.send_message(
                    other.email, org.id, "all three", dm_to=[email, third.email]
                ),
                "/group-dms/channels/{}/threads",
            )


async def test_a_failed_mark_as_read_is_logged_and_shown_and_other_notices_send_nothing(
    tmp_path, caplog
) -> None:
    """The user pressed it and would believe it done: a failure is one short message. A
    summary, the app's own notice, one without a plain conversation id or of an organisation
    this session does not have send no request at all."""
    from app.config import Settings
    from app.core.service import TelexService
    from app.errors import NetworkError
    from app.events import ShowError
    from app.models import Notice, NoticeKind, Organisation, Session, User
    from tests.support.fakes import RecordingNotifier

    class Api:
        def __init__(self) -> None:
            self.calls: list[tuple[str, bool]] = []

        async def mark_read(
            self, _session: Session, channel_id: str, *, dm: bool, group: bool = False
        ) -> None:
            self.calls.append((channel_id, dm))
            raise NetworkError("The Telex server did not answer in time.")

    events: list[object] = []
    service = TelexService(
        Settings(config_dir=tmp_path, log_dir=tmp_path), RecordingNotifier(), events.append
    )
    api = Api()
    service._api = api  # type: ignore[assignment]
    service._session = Session(User("u1", "a@b.c", "A"), "acc", "nt")
    service._organisations = [Organisation("acme", "Acme")]
    news = Notice(key="acme/c1", title="#general", body="new", org_id="acme", channel_id="c1")
    for other in (
        Notice(key="s", title="Telex", body="3 conversations", kind=NoticeKind.SUMMARY),
        Notice(key="test", title="Telex Start", body="working", kind=NoticeKind.INFO),
        Notice(key="acme", title="acme", body="new", org_id="acme"),
        Notice(key="x", title="x", body="new", org_id="acme", channel_id="../auth/logout"),
        Notice(key="other/c1", title="x", body="new", org_id="other", channel_id="c1"),
    ):
        assert await service.mark_read(other) is False
    assert api.calls == []
    assert await service.mark_read(news) is False
    assert api.calls == [("c1", False)]
    assert events == [ShowError("Mark as read failed", "The Telex server did not answer in time.")]
    assert "Mark as read failed for acme/c1" in caplog.text
