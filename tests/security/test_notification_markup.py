"""Text from the server reaches the notification server as text, not as markup it interprets.

dunst (like most freedesktop notification servers) renders a subset of HTML in notifications.
A DM preview or a name chosen by another user must not become bold text, a link or an image:
the app has to escape (or strip) ``<``, ``>`` and ``&`` before the ``Notify`` call.
"""

from __future__ import annotations

import asyncio

import pytest

from devstack.stack import LocalStack
from tests.support.desktop import NotificationView
from tests.support.security import Launch, headless_args

HOSTILE_PREVIEW = '<b>Pay</b> <a href="https://evil.example/">now</a> <img src="file:///x.png"/>'


@pytest.mark.desktop
async def test_server_text_in_a_notification_is_not_markup(
    launch: Launch, notifications: NotificationView
):
    async with LocalStack() as local:
        email = local.account.email
        args = headless_args(email, local.api_url, local.ws_url, "--notifier", "desktop")
        app = await launch(*args, stdin=local.account.password + "\n")
        await app.wait_line("2 of 2 channel(s) live")
        org = local.simulator.orgs_of(email)[0]
        payload = {
            "notification_type": "unread_thread_change",
            "section": "dm_channels_section",
            "notification_id": "markup-1",
            "data": {
                "channel_id": "dm-markup",
                "username": "<i>boss</i>",
                "thread_count": 1,
                "preview_message": HOSTILE_PREVIEW,
            },
        }
        await local.simulator.publish_raw(email, org.id, payload)
        shown = await asyncio.to_thread(
            notifications.wait_for, lambda n: "boss" in n.summary or "Pay" in n.body, 10
        )
        assert await app.stop() == 0
    for text in (shown.summary, shown.body):
        assert not any(tag in text for tag in ("<b>", "<i>", "<a ", "<img")), text
