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
