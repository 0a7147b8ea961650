"""Settings: defaults < config file < ``TELEX_*`` environment < command-line flags, validated once.

Secrets never live here: the config file holds endpoints and preferences only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from yarl import URL

from app.constants import APP_AUTHOR, APP_SLUG, ENVIRONMENTS, RELEASES_URL
from app.errors import ConfigError

ENV_PREFIX = "TELEX_"
CONFIG_FILE_NAME = "config.json"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_CA_FILE_BYTES = 16 << 20  # the system bundles are about 200 KB


@dataclass(frozen=True)
class Settings:
    env: str = "production"
    api_url: str = ENVIRONMENTS["production"][0]
    ws_url: str = ENVIRONMENTS["production"][1]
    # The web app's origin: a clicked notification opens its conversation's permalink here
    # (app.permalink); only this origin is ever opened.
    web_url: str = ENVIRONMENTS["production"][2]
    ca_file: Path | None = None
    notifier: str = "auto"
    main_app: Path | None = None
    log_level: str = "INFO"
    request_timeout: float = 15.0
    request_retries: int = 3
    retry_min_delay: float = 0.5
    retry_max_delay: float = 8.0
    connect_timeout: float = 10.0
    # A sign-in fetches one subscription token per organisation: 12 at once keeps 1,000
    # organisations under 3 s at 20 ms a request (floor 1.7 s) and one user's load small.
    max_requests_in_flight: int = 12
    ping_grace: float = 10.0
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 20.0
    # Delivery (app.core.delivery): later events of one conversation within the window are shown as
    # one update at its end (0: no coalescing); more than summary_threshold conversations at
    # once (live within flood_window, or in one recovered backlog) become one summary.
    coalesce_window: float = 3.0
    flood_window: float = 1.0
    summary_threshold: int = 4
    backlog_settle: float = 2.0  # a backlog round that nobody ends is shown after this quiet
    pause_check_interval: float = 30.0  # how often a pause looks at the wall clock
    # Telex's own notification settings (pause, muted channels, hours, "notify about"; see
    # app.core.telex_settings) are read at sign-in, after each reconnection, when the sidebar
    # changes and this often; False ignores them (the local pause and mutes still apply).
    honour_telex_preferences: bool = True
    telex_preferences_interval: float = 300.0
    # Per-conversation state (unread counts, what a pause held back) is kept for at most this
    # many conversations; the least recent ones are forgotten first (app.core.policy and
    # app.core.delivery).
    conversations_kept: int = 10_000
    # A channel post that says only counts waits at most this long for the channel's preview
    # (who wrote what) before the count-only text stays; a preview older than the second
    # value is not the post that was just announced.
    preview_timeout: float = 3.0
    preview_max_age: float = 120.0
    # The newest release is looked up here about once a day (app.core.updates); "" never checks.
    update_url: str = RELEASES_URL
    config_dir: Path = Path(platformdirs.user_config_dir(APP_SLUG, APP_AUTHOR))
    log_dir: Path = Path(platformdirs.user_log_dir(APP_SLUG, APP_AUTHOR))


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_PATH_FIELDS = {"ca_file", "main_app", "config_dir", "log_dir"}
_MAY_BE_ZERO = {"request_retries", "coalesce_window"}  # 0: every event pops


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_secure_url(name: str, url: str, secure: str, plain: str) -> str:
    """Allow only TLS schemes, except plaintext towards this machine (local stack, tests).

    Parsed with yarl, the parser aiohttp sends with, so the host checked here is the host
    connected to. User info is refused (aiohttp would send it as Basic auth next to the
    Telex credentials), and so are a query and a fragment, which no endpoint here takes."""
    try:
        parts = URL(url)
        host = parts.host
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} {url!r} is not a valid URL ({exc}).") from None
    if not parts.is_absolute() or not host:
        raise ConfigError(f"{name} {url!r} is not a valid URL.")
    if parts.raw_user is not None or parts.raw_password is not None:
        raise ConfigError(
            f"{name} holds a user name or password (not repeated here); Telex Start signs in "
            "with your Telex account, so leave them out of the address."
        )
    if parts.raw_query_string or parts.raw_fragment or "?" in url or "#" in url:
        raise ConfigError(f"{name} {url!r} must not have a query (?) or a fragment (#).")
    if parts.scheme == secure:
        return url
    if parts.scheme == plain:
        if is_loopback_host(host):
            return url
        raise ConfigError(
            f"{name} {url!r} uses unencrypted {plain}://; only {secure}:// is allowed "
            "(plain connections are accepted for this machine only, e.g. 127.0.0.1)."
        )
    raise ConfigError(f"{name} {url!r} must start with {secure}://.")


def check_ca_file(path: Path) -> None:
    """Load ``--ca-file`` once while the settings are checked, so a file that is not there, not
    a regular file, or holds no PEM certificate is a configuration error with its reason, not
    a crash when the first connection is made."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"The CA file {path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"The CA file {path} cannot be read: {exc.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"The CA file {path} is not a regular file.")
    if info.st_size > MAX_CA_FILE_BYTES:
        raise ConfigError(f"The CA file {path} is too large for a certificate bundle.")
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError:
        raise ConfigError(
            f"The CA file {path} holds no PEM certificate (a bundle of "
            "-----BEGIN CERTIFICATE----- blocks is expected)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"The CA file {path} cannot be read: {exc.strerror}.") from None


def websocket_url_for(api_url: str) -> str:
    """The push endpoint that belongs to an API base URL (same host, same environment)."""
    parts = URL(api_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return str(parts.with_scheme(scheme).with_path("/centrifugo/connection/websocket"))


def read_config_document(path: Path) -> dict[str, Any]:
    """The whole config file as a JSON object ({} when there is none): the one parser of
    ``config.json``, for its ``"settings"`` (here) and its ``"preferences"``
    (:mod:`app.preferences`). A :class:`ConfigError` says what is wrong with the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc.strerror}.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"The config file {path} is not UTF-8 text.") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"The config file {path} is not valid JSON: {exc.msg} (line {exc.lineno})."
        ) from exc
    except RecursionError as exc:
        raise ConfigError(f"The config file {path} is nested too deeply.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"The config file {path} must hold a JSON object.")
    return data


def read_config_file(path: Path) -> dict[str, Any]:
    """The ``"settings"`` object of the config file, checked for unknown names."""
    return settings_section(read_config_document(path), path)


def settings_section(document: Mapping[str, Any], path: Path) -> dict[str, Any]:
    settings = document.get("settings", {})
    if not isinstance(settings, dict):
        raise ConfigError(f'"settings" in the config file {path} must be a JSON object.')
    unknown = sorted(set(settings) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"Unknown setting(s) in {path}: {', '.join(unknown)}.")
    return settings


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: environ[ENV_PREFIX + name.upper()]
        for name in _FIELDS
        if ENV_PREFIX + name.upper() in environ
    }


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    if kind in ("float", "int"):
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be a number, got {value!r}.")
        try:
            number = float(value) if kind == "float" else int(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{source}: {name} must be a number, got {value!r}.") from None
        if not math.isfinite(number):
            raise ConfigError(f"{source}: {name} must be a finite number, got {value!r}.")
        if number < 0 or (number == 0 and name not in _MAY_BE_ZERO):
            raise ConfigError(f"{source}: {name} must be greater than zero, got {value!r}.")
        return number
    if kind == "bool":
        return _coerce_bool(name, value, source)
    if name in _PATH_FIELDS:
        if value in (None, ""):
            return None
        if not isinstance(value, str | os.PathLike):
            raise ConfigError(f"{source}: {name} must be a path, got {value!r}.")
        try:
            return Path(value).expanduser()
        except (ValueError, RuntimeError) as exc:  # a NUL byte; ~user that does not exist
            raise ConfigError(f"{source}: {name} is not a usable path: {value!r}.") from exc
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {name} must be text, got {value!r}.")
    return value


def _coerce_bool(name: str, value: Any, source: str) -> bool:
    """A bool, or its words in the environment and on the command line."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{source}: {name} must be true or false, got {value!r}.")


def check_web_origin(url: str) -> str:
    """The web app's origin (``web_url``): https (http for loopback only), nothing after the
    host and port; returned without a trailing ``/``."""
    url = check_secure_url("Web URL", url.rstrip("/"), "https", "http")
    parts = URL(url)
    if parts.raw_path not in ("", "/"):
        raise ConfigError(
            f"Web URL {url!r} must be an origin only (scheme, host and port, e.g. "
            "https://telex.im), without a path."
        )
    return str(parts.origin())


def load_settings(
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every source (later wins), then validate the result as a whole."""
    return load_config(cli, environ)[0]


def load_config(
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, dict[str, Any]]:
    """:func:`load_settings`, and the whole config file as it was read: start-up hands it to
    the preferences store, so ``config.json`` is read once."""
    environ = os.environ if environ is None else environ
    env_values = settings_from_env(environ)
    cli_values = {k: v for k, v in cli.items() if v is not None}
    config_dir = Path(
        cli_values.get("config_dir") or env_values.get("config_dir") or Settings.config_dir
    )
    path = config_dir / CONFIG_FILE_NAME
    document = read_config_document(path)
    layers = (
        (f"config file {path}", settings_section(document, path)),
        ("environment", env_values),
        ("command line", cli_values),
    )
    merged: dict[str, Any] = {}
    explicit_urls: set[str] = set()
    for source, values in layers:
        for name, raw in values.items():
            merged[name] = _coerce(
                name, raw, source if source != "environment" else f"{ENV_PREFIX}{name.upper()}"
            )
            if name in ("api_url", "ws_url", "web_url"):
                explicit_urls.add(name)
    merged["config_dir"] = config_dir
    return _validate(merged, explicit_urls), document


def _validate(values: dict[str, Any], explicit_urls: set[str]) -> Settings:
    env = values.get("env", Settings.env)
    if env not in ENVIRONMENTS:
        raise ConfigError(f"Unknown environment {env!r}; choose one of {', '.join(ENVIRONMENTS)}.")
    api_default, ws_default, web_default = ENVIRONMENTS[env]
    api_url = check_secure_url(
        "API URL", values.get("api_url", api_default).rstrip("/"), "https", "http"
    )
    if "ws_url" in explicit_urls:
        ws_url = values["ws_url"]
    elif "api_url" in explicit_urls:
        ws_url = websocket_url_for(api_url)
    else:
        ws_url = ws_default
    values["api_url"] = check_secure_url("API URL", api_url, "https", "http")
    values["ws_url"] = check_secure_url("WebSocket URL", ws_url, "wss", "ws")
    values["web_url"] = check_web_origin(
        values["web_url"] if "web_url" in explicit_urls else web_default
    )
    level = str(values.get("log_level", Settings.log_level)).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"Unknown log level {level!r}; choose one of {', '.join(LOG_LEVELS)}.")
    values["log_level"] = level
    if (ca_file := values.get("ca_file")) is not None:
        check_ca_file(ca_file)
    reconnect_min = values.get("reconnect_min_delay", Settings.reconnect_min_delay)
    if reconnect_min > values.get("reconnect_max_delay", Settings.reconnect_max_delay):
        raise ConfigError("reconnect_min_delay must not exceed reconnect_max_delay.")
    if update_url := values.get("update_url"):
        values["update_url"] = check_secure_url("Update URL", update_url, "https", "http")
    values = {k: v for k, v in values.items() if v is not None or k in ("ca_file", "main_app")}
    return Settings(**values)
