"""Transport rules: https/wss only (plaintext to loopback alone), TLS always verified, --ca-file
adds trust, and no redirect ever carries a request off the configured server or to plaintext.

In-process here (fast and precise about error text); tests/security/test_tls_end_to_end.py runs
the same rules through the app as a subprocess, against the real Centrifugo too.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from app.cli import build_parser
from app.config import Settings, check_secure_url
from app.core.api import TelexApi
from app.core.net import RequestRefused, env_proxy, http_session, ssl_context
from app.errors import ApiError, ConfigError, NetworkError
from app.models import Session, User
from devstack.stack import LocalStack
from tests.support.security import (
    Pki,
    Recorder,
    Serve,
    no_requests_for,
    redirect_to,
    settings_for,
)

APP_DIR = Path(__file__).resolve().parents[2] / "app"
SESSION = Session(User("u1", "a@b.c", "A"), access_token="acc-1", notification_token="nt-1")

# -- the URL rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api.telex.im/api/v1",
        "http://127.0.0.1:8080/api/v1",
        "http://127.9.9.9/api/v1",
        "http://localhost:1/api/v1",
        "http://[::1]:8080/api/v1",
    ],
)
def test_tls_or_loopback_urls_are_accepted(url: str):
    assert check_secure_url("API URL", url, "https", "http") == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.telex.im/api/v1",
        "http://10.0.0.1/api/v1",
        "http://0.0.0.0:8080/api/v1",
        "http://127.0.0.1@evil.example/api/v1",
        "http://evil.example#@127.0.0.1/",
        "http://localhost.evil.example/",
        "http://127.0.0.1.nip.io/",
        "ftp://127.0.0.1/",
        "//api.telex.im/api/v1",
    ],
)
def test_plaintext_off_this_machine_is_refused(url: str):
    with pytest.raises(ConfigError):
        check_secure_url("API URL", url, "https", "http")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # urlsplit saw 127.0.0.1 here; yarl, which sends, refuses the backslash
        ("http://evil.example\\@127.0.0.1:5/api/v1", "not a valid URL"),
        ("http://urluser:URLSECRET@127.0.0.1:5/api/v1", "user name or password"),
        ("https://urluser@api.telex.example/api/v1", "user name or password"),
        ("https://api.telex.example/api/v1?next=evil", "query"),
        ("https://api.telex.example/api/v1#frag", "fragment"),
        ("https://api.telex.example:99999/api/v1", "not a valid URL"),
    ],
)
def test_urls_are_checked_with_the_parser_that_sends(url: str, message: str):
    with pytest.raises(ConfigError, match=message) as caught:
        check_secure_url("API URL", url, "https", "http")
    assert "URLSECRET" not in str(caught.value)


def test_a_url_with_user_info_never_reaches_the_push_url(tmp_path: Path):
    with pytest.raises(ConfigError, match="user name or password"):
        settings_for(tmp_path, api_url="http://u:URLSECRET@127.0.0.1:5/api/v1")


async def test_localhost_is_this_computer_whatever_the_system_resolver_says(
    monkeypatch: pytest.MonkeyPatch,
):
    from app.core.net import LoopbackNameResolver

    asked: list[str] = []

    async def system_resolve(self, host, port=0, family=socket.AF_INET):
        asked.append(host)
        return [
            {
                "hostname": host,
                "host": "203.0.113.7",
                "port": port,
                "family": family,
                "proto": 0,
                "flags": 0,
            }
        ]

    monkeypatch.setattr(aiohttp.ThreadedResolver, "resolve", system_resolve)
    resolver = LoopbackNameResolver()
    both = await resolver.resolve("LocalHost", 8080, socket.AF_UNSPEC)
    assert [(r["host"], r["port"]) for r in both] == [("127.0.0.1", 8080), ("::1", 8080)]
    only_v6 = await resolver.resolve("localhost", 1, socket.AF_INET6)
    assert [r["host"] for r in only_v6] == ["::1"]
    assert asked == []  # never asked the system (or DNS) about localhost
    other = await resolver.resolve("api.telex.example", 443, socket.AF_INET)
    assert other[0]["host"] == "203.0.113.7"
    assert asked == ["api.telex.example"]
    await resolver.close()


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"ws_url": "ws://push.telex.example/connection/websocket"}, "unencrypted ws://"),
        ({"api_url": "http://api.telex.example/api/v1"}, "unencrypted http://"),
        ({"ws_url": "https://push.telex.example/connection/websocket"}, "must start with wss://"),
    ],
)
def test_settings_refuse_insecure_endpoints(tmp_path: Path, cli: dict[str, str], message: str):
    with pytest.raises(ConfigError, match=message):
        settings_for(tmp_path, **cli)


def test_an_https_api_derives_a_wss_push_url(tmp_path: Path):
    assert settings_for(tmp_path, api_url="https://h.example/api/v1").ws_url.startswith("wss://")


# -- verification cannot be turned off ----------------------------------------------------------

_NO_VERIFY = re.compile(
    r"ssl\s*=\s*False|verify_ssl|CERT_NONE|CERT_OPTIONAL|check_hostname|verify\s*=\s*False"
    r"|_create_unverified_context|verify_mode|fingerprint\s*="
)


def test_no_code_in_app_turns_certificate_verification_off():
    """A grep (and an AST pass for ``ssl=False`` written any way) over every module in app/."""
    offenders = []
    for path in sorted(APP_DIR.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        offenders += [
            f"{path.relative_to(APP_DIR)}:{source.count(chr(10), 0, m.start()) + 1}: {m.group()}"
            for m in _NO_VERIFY.finditer(source)
        ]
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.keyword)
                and node.arg in ("ssl", "verify")
                and isinstance(node.value, ast.Constant)
                and node.value.value in (False, None)
            ):
                offenders.append(f"{path.relative_to(APP_DIR)}:{node.lineno}: {node.arg}=")
    assert offenders == []


def test_no_setting_or_flag_can_disable_verification():
    names = [*Settings.__dataclass_fields__, *build_parser()._option_string_actions]
    risky = [n for n in names if re.search(r"insecure|verify|no.?ssl|no.?tls|skip", n, re.I)]
    assert risky == []


def test_the_tls_context_verifies_and_ca_file_adds_to_system_trust(tmp_path: Path, pki: Pki):
    plain = ssl_context(settings_for(tmp_path))
    extra = ssl_context(settings_for(tmp_path, ca_file=str(pki.ca.ca_path)))
    for context in (plain, extra):
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    # added, not replaced: the system's authorities are all still there
    assert extra.cert_store_stats()["x509_ca"] == plain.cert_store_stats()["x509_ca"] + 1


# -- TLS against the Telex API simulator, in process ------------------------------------------


async def _login(settings: Settings, email: str, password: str) -> str:
    async with http_session(settings, ssl_context(settings)) as http:
        api = TelexApi(http, dataclasses.replace(settings, request_timeout=5, request_retries=0))
        session = await api.login(email, password)
        return session.user.id


@pytest.mark.parametrize(
    ("cert", "trusted", "error"),
    [
        ("good", True, None),
        ("good", False, r"certificate is not trusted .*unable to get local issuer"),
        ("wrong_host", True, r"certificate is not trusted .*(mismatch|not valid for)"),
        ("stranger_cert", True, r"certificate is not trusted .*unable to get local issuer"),
    ],
)
async def test_api_tls_needs_a_trusted_certificate_for_the_right_host(
    tmp_path: Path, pki: Pki, cert: str, trusted: bool, error: str | None
):
    server_cert = getattr(pki, cert)
    async with LocalStack(ssl_context=server_cert.server_context()) as stack:
        assert stack.api_url.startswith("https://127.0.0.1:")
        cli = {"api_url": stack.api_url, "ws_url": stack.ws_url}
        if trusted:
            cli["ca_file"] = str(pki.ca.ca_path)
        settings = settings_for(tmp_path, **cli)
        email, password = stack.account.email, stack.account.password
        if error is None:
            assert await _login(settings, email, password)
        else:
            with pytest.raises(NetworkError, match=error):
                await _login(settings, email, password)
            assert stack.simulator.requests == []  # refused before any request was sent


# -- redirects ---------------------------------------------------------------------------------


async def _api_for(settings: Settings, http: aiohttp.ClientSession) -> TelexApi:
    return TelexApi(http, dataclasses.replace(settings, request_timeout=5, request_retries=0))


@pytest.mark.parametrize("tls", [True, False], ids=["https-to-http", "loopback-to-loopback"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_rest_redirects_are_never_followed(
    tmp_path: Path, pki: Pki, serve: Serve, recorder: Recorder, *, tls: bool, status: int
):
    context = pki.good.server_context() if tls else None
    base = await serve(redirect_to(recorder.url, status), ssl_context=context)
    settings = settings_for(tmp_path, api_url=base + "/api/v1", ca_file=str(pki.ca.ca_path))
    async with http_session(settings, ssl_context(settings)) as http:
        api = await _api_for(settings, http)
        calls = [
            api.login("a@b.c", "pw"),
            api.organisations(SESSION),
            api.connection_token(SESSION),
            api.subscription_token(SESSION, "org/u1"),
        ]
        for call in calls:
            with pytest.raises(ApiError, match="redirects are not followed"):
                await call
    await no_requests_for(recorder)


@pytest.mark.parametrize("header", ["Authorization", "X-Notification-Token"])
async def test_the_session_itself_refuses_to_carry_credentials_through_a_redirect(
    tmp_path: Path, pki: Pki, serve: Serve, recorder: Recorder, header: str
):
    """Even code that forgets ``allow_redirects=False`` cannot leak a token: the session's
    guard stops the redirect (aiohttp itself would drop Authorization only, not our header)."""
    base = await serve(redirect_to(recorder.url), ssl_context=pki.good.server_context())
    settings = settings_for(tmp_path, api_url=base + "/api/v1", ca_file=str(pki.ca.ca_path))
    async with http_session(settings, ssl_context(settings)) as http:
        with pytest.raises(RequestRefused, match="does not follow redirects"):
            await http.get(base + "/api/v1/centrifugo/connection", headers={header: "secret-1"})
    await no_requests_for(recorder)


async def test_a_redirect_to_plaintext_off_this_machine_is_refused_without_a_lookup(
    tmp_path: Path, pki: Pki, serve: Serve
):
    base = await serve(
        redirect_to("http://telex-start-test.invalid"), ssl_context=pki.good.server_context()
    )
    settings = settings_for(tmp_path, api_url=base + "/api/v1", ca_file=str(pki.ca.ca_path))
    async with http_session(settings, ssl_context(settings)) as http:
        with pytest.raises(RequestRefused):
            await http.get(base + "/anything")


@pytest.mark.parametrize("header", ["Authorization", "X-Notification-Token"])
async def test_credentials_only_go_to_the_configured_api(
    tmp_path: Path, pki: Pki, serve: Serve, recorder: Recorder, header: str
):
    """A URL built from server data and pointing elsewhere never gets a credential."""
    api = await serve(redirect_to(recorder.url), ssl_context=pki.good.server_context())
    settings = settings_for(tmp_path, api_url=api + "/api/v1", ca_file=str(pki.ca.ca_path))
    async with http_session(settings, ssl_context(settings)) as http:
        with pytest.raises(RequestRefused, match="only go to the Telex API"):
            await http.post(recorder.url + "/api/v1/centrifugo/subscription", headers={header: "s"})
        async with http.get(recorder.url + "/public") as response:  # no credential: fine
            assert response.status == 200
    assert [r[1] for r in recorder.requests] == ["/public"]


async def test_the_push_websocket_never_follows_a_redirect(
    tmp_path: Path, pki: Pki, serve: Serve, recorder: Recorder
):
    push = await serve(redirect_to(recorder.url), ssl_context=pki.good.server_context())
    ws_url = push.replace("https", "wss") + "/connection/websocket"
    settings = settings_for(
        tmp_path, api_url=push + "/api/v1", ws_url=ws_url, ca_file=str(pki.ca.ca_path)
    )
    async with http_session(settings, ssl_context(settings)) as http:
        with pytest.raises(RequestRefused, match="does not follow redirects"):
            await http.ws_connect(ws_url)
        with pytest.raises(RequestRefused, match="push connection only goes to"):
            await http.ws_connect(recorder.ws_url)
    await no_requests_for(recorder)


async def test_plaintext_requests_off_this_machine_are_refused_by_the_session(tmp_path: Path):
    settings = settings_for(tmp_path)
    async with http_session(settings, ssl_context(settings)) as http:
        with pytest.raises(RequestRefused, match="without encryption"):
            await http.get("http://telex-start-test.invalid/")


# -- proxies ---------------------------------------------------------------------------------------


def test_a_proxy_from_the_environment_is_used_for_remote_endpoints_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    remote = ("https://api.telex.example/api/v1", "wss://api.telex.example/ws")
    assert env_proxy(*remote) == "http://proxy.example:3128"
    local = ("http://127.0.0.1:8080/api/v1", "ws://127.0.0.1:8080/ws")
    assert env_proxy(*local) is None  # loopback plaintext never leaves this computer
    monkeypatch.setenv("NO_PROXY", "telex.example")
    monkeypatch.setenv("no_proxy", "telex.example")
    assert env_proxy(*remote) is None
    assert env_proxy("https://api.github.com/repos/o/r/releases/latest") == (
        "http://proxy.example:3128"  # the update check asks for its own host
    )


def test_all_proxy_stands_in_for_https_proxy_and_socks_is_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    remote = "https://api.telex.example/api/v1"
    monkeypatch.setenv("HTTP_PROXY", "http://plain-only.example:3128")
    monkeypatch.setenv("http_proxy", "http://plain-only.example:3128")
    assert env_proxy(remote) is None  # HTTP_PROXY is for plain http
    monkeypatch.setenv("ALL_PROXY", "http://all.example:3128")
    monkeypatch.setenv("all_proxy", "http://all.example:3128")
    assert env_proxy(remote) == "http://all.example:3128"
    monkeypatch.setenv("ALL_PROXY", "socks5://all.example:1080")
    monkeypatch.setenv("all_proxy", "socks5://all.example:1080")
    assert env_proxy(remote) is None
    assert "only http:// and https:// proxies work" in caplog.text
