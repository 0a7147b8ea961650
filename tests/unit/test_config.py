"""Settings: precedence of the sources, transport rules, and readable errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.config import Settings, load_settings
from app.errors import ConfigError


def load(tmp_path, cli=None, env=None, file=None):
    if file is not None:
        (tmp_path / "config.json").write_text(file if isinstance(file, str) else json.dumps(file))
    return load_settings({**(cli or {}), "config_dir": str(tmp_path)}, env or {})


def test_defaults_are_production(tmp_path):
    settings = load(tmp_path)
    assert settings.api_url == "https://api.telex.im/api/v1"
    assert settings.ws_url == "wss://api.telex.im/centrifugo/connection/websocket"


def test_staging_switches_both_urls(tmp_path):
    settings = load(tmp_path, cli={"env": "staging"})
    assert settings.api_url.startswith("https://api.staging.telex.im/")
    assert settings.ws_url.startswith("wss://api.staging.telex.im/")


def test_precedence_file_env_cli(tmp_path):
    file = {"settings": {"request_timeout": 3, "log_level": "debug", "notifier": "log"}}
    env = {"TELEX_REQUEST_TIMEOUT": "4", "TELEX_LOG_LEVEL": "warning"}
    settings = load(tmp_path, cli={"log_level": "ERROR"}, env=env, file=file)
    assert settings.request_timeout == 4.0
    assert settings.log_level == "ERROR"
    assert settings.notifier == "log"


def test_api_url_alone_derives_matching_websocket(tmp_path):
    settings = load(tmp_path, cli={"api_url": "https://telex.example.com/api/v1/"})
    assert settings.api_url == "https://telex.example.com/api/v1"
    assert settings.ws_url == "wss://telex.example.com/centrifugo/connection/websocket"


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"api_url": "http://api.telex.im/api/v1"}, "unencrypted http://"),
        ({"ws_url": "ws://10.0.0.5/connection/websocket"}, "unencrypted ws://"),
        ({"api_url": "ftp://x/api"}, "must start with https://"),
        ({"env": "moon"}, "Unknown environment"),
        ({"log_level": "loud"}, "Unknown log level"),
        ({"ca_file": "/does/not/exist.pem"}, "does not exist"),
    ],
)
def test_bad_values_are_refused_with_reason(tmp_path, cli, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, cli=cli)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "passwd", "holds no PEM certificate"),
        (lambda tmp: tmp, "is not a regular file"),
        (lambda tmp: Path("/dev/null"), "is not a regular file"),
        (lambda tmp: Path("/proc/self/environ"), "holds no PEM certificate"),
    ],
)
def test_a_ca_file_that_is_no_certificate_bundle_is_a_config_error(tmp_path, make, message):
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, cli={"ca_file": str(make(tmp_path))})


def test_the_ca_file_error_reaches_the_command_line_as_a_usage_error(tmp_path, capsys):
    from app.cli import EXIT_USAGE, main

    (tmp_path / "not-pem").write_text("hello\n")
    argv = ["--headless", "--email", "a@b.c", "--password-stdin", "--ca-file"]
    assert main([*argv, str(tmp_path / "not-pem"), "--api-url", "http://127.0.0.1:9/api"]) == (
        EXIT_USAGE
    )
    assert "holds no PEM certificate" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.5.6.7"])
def test_plaintext_allowed_for_loopback_only(tmp_path, host):
    settings = load(tmp_path, cli={"api_url": f"http://{host}:8080/api/v1"})
    assert settings.ws_url == f"ws://{host}:8080/centrifugo/connection/websocket"


def test_bad_env_number_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="TELEX_REQUEST_TIMEOUT"):
        load(tmp_path, env={"TELEX_REQUEST_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    ("file", "message"),
    [("{oops", "not valid JSON"), ("[]", "JSON object"), ({"settings": {"colour": 1}}, "colour")],
)
def test_broken_config_file_is_explained(tmp_path, file, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, file=file)


def test_delivery_settings(tmp_path):
    settings = load_settings(
        {"config_dir": tmp_path, "coalesce_window": "0.5", "summary_threshold": "2"}, environ={}
    )
    assert settings.coalesce_window == 0.5
    assert settings.summary_threshold == 2


def test_the_invented_conversation_arguments_are_gone(tmp_path):
    """The desktop client ignores its arguments: there is no setting to pass any."""
    assert not hasattr(Settings, "main_app_conversation_args")
    with pytest.raises(ConfigError, match="main_app_conversation_args"):
        load(tmp_path, file={"settings": {"main_app_conversation_args": "--channel={channel}"}})


@pytest.mark.parametrize(
    ("env", "expected"),
    [("production", "https://telex.im"), ("staging", "https://staging.telex.im")],
)
def test_the_web_origin_follows_the_environment(tmp_path, env, expected):
    assert load_settings({"config_dir": tmp_path, "env": env}, environ={}).web_url == expected
    assert Settings.web_url == "https://telex.im"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://chat.example.com/", "https://chat.example.com"),
        ("https://chat.example.com:8443", "https://chat.example.com:8443"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://localhost:3000/", "http://localhost:3000"),
    ],
)
def test_the_web_origin_is_overridable(tmp_path, value, expected):
    from_env = load_settings({"config_dir": tmp_path}, environ={"TELEX_WEB_URL": value})
    assert from_env.web_url == expected
    from_file = load(tmp_path, file={"settings": {"web_url": value}})
    assert from_file.web_url == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://telex.im", "unencrypted"),
        ("ftp://telex.im", "must start with https"),
        ("https://user:pw@telex.im", "user name or password"),
        ("https://telex.im/?x=1", "query"),
        ("https://telex.im/#x", "fragment"),
        ("https://telex.im/app", "origin only"),
        ("telex.im", "not a valid URL"),
    ],
)
def test_an_unsafe_web_origin_is_refused(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({"config_dir": tmp_path}, environ={"TELEX_WEB_URL": value})


@pytest.mark.parametrize(("word", "value"), [("false", False), ("0", False), ("Yes", True)])
def test_honouring_telex_preferences_is_a_switch(tmp_path, word, value):
    assert Settings().honour_telex_preferences is True
    settings = load(tmp_path, env={"TELEX_HONOUR_TELEX_PREFERENCES": word})
    assert settings.honour_telex_preferences is value
    with pytest.raises(ConfigError, match="true or false"):
        load(tmp_path, env={"TELEX_HONOUR_TELEX_PREFERENCES": "maybe"})
    assert (
        load(
            tmp_path, file={"settings": {"honour_telex_preferences": False}}
        ).honour_telex_preferences
        is False
    )
