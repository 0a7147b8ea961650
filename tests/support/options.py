"""The app's option objects as tests build them: the product's values (``Settings``' defaults
and the fixed tuning in each ``from_settings``), with only what a test changes overridden. The
product classes have no defaults of their own, so nothing here repeats a value."""

from __future__ import annotations

import dataclasses
from typing import Any

from app.config import Settings
from app.core.api import RetryPolicy
from app.core.delivery import DeliveryOptions
from app.core.realtime.client import RealtimeOptions


def realtime_options(settings: Settings | None = None, **overrides: Any) -> RealtimeOptions:
    return dataclasses.replace(RealtimeOptions.from_settings(settings or Settings()), **overrides)


def delivery_options(settings: Settings | None = None, **overrides: Any) -> DeliveryOptions:
    return dataclasses.replace(DeliveryOptions.from_settings(settings or Settings()), **overrides)


def retry_policy(settings: Settings | None = None, **overrides: Any) -> RetryPolicy:
    return dataclasses.replace(RetryPolicy.from_settings(settings or Settings()), **overrides)
