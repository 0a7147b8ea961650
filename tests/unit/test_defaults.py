"""Defaults are written once, in ``Settings``: the option classes have none of their own and
take their values from the settings (the drift this guards against: ``TelexApi`` once had
``max_in_flight=8`` while the setting said 12)."""

from __future__ import annotations

import dataclasses
from typing import cast

import aiohttp
import pytest

from app.config import Settings
from app.core.api import RetryPolicy, TelexApi
from app.core.delivery import DeliveryOptions
from app.core.realtime.client import RealtimeOptions


@pytest.mark.parametrize("options", [RealtimeOptions, RetryPolicy, DeliveryOptions])
def test_option_classes_have_no_defaults_of_their_own(options: type) -> None:
    defaulted = [
        f.name
        for f in dataclasses.fields(options)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert defaulted == []


def test_options_follow_the_settings() -> None:
    settings = Settings(
        request_timeout=7.0,
        request_retries=1,
        retry_min_delay=0.25,
        connect_timeout=4.0,
        reconnect_max_delay=9.0,
        coalesce_window=0.0,
    )
    assert RetryPolicy.from_settings(settings).attempts == 1
    assert RetryPolicy.from_settings(settings).min_delay == 0.25
    realtime = RealtimeOptions.from_settings(settings)
    assert (realtime.connect_timeout, realtime.command_timeout) == (4.0, 7.0)
    assert realtime.reconnect_max_delay == 9.0
    assert DeliveryOptions.from_settings(settings).coalesce_window == 0.0


def test_the_api_takes_its_limits_from_the_settings() -> None:
    http = cast(aiohttp.ClientSession, None)
    api = TelexApi(http, Settings(api_url="https://api.example/api/v1/"))
    assert api._in_flight._value == Settings.max_requests_in_flight == 12
    assert api._timeout.total == Settings.request_timeout
    assert api._base == "https://api.example/api/v1"
