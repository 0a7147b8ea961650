"""TLS as a user meets it: ``python -m app --headless`` against ``https://127.0.0.1:…`` and
``wss://127.0.0.1:…``, with a local CA made by trustme. The push server is the in-repo one or
the real Centrifugo v6 (its ``http_server.tls``). With ``--ca-file`` the flow works; a certificate
from an unknown CA or for another host name is refused with a reason the user can read.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

import pytest

from devstack.push_server import PushServer, PushServerConfig
from devstack.stack import LocalStack, PushTarget
from tests.support.app_process import AppProcess
from tests.support.centrifugo import find_centrifugo, run_centrifugo
from tests.support.security import Launch, Pki, ServerCert, headless_args

KINDS = [
    pytest.param("builtin", id="builtin"),
    pytest.param("centrifugo", id="centrifugo", marks=pytest.mark.centrifugo),
]


@contextlib.asynccontextmanager
async def tls_stack(kind: str, pki: Pki, push_cert: ServerCert, tmp_path: Path):
    """The API simulator with a good certificate; the push server with ``push_cert``."""
    secret, api_key = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    async with contextlib.AsyncExitStack() as stack:
        if kind == "builtin":
            config = PushServerConfig(
                hmac_secret=secret, api_key=api_key, ssl_context=push_cert.server_context()
            )
            server = await stack.enter_async_context(PushServer(config))
            target = PushTarget(server.ws_url, server.api_url, api_key, secret)
        else:
            inst = await stack.enter_async_context(
                run_centrifugo(
                    hmac_secret=secret,
                    api_key=api_key,
                    allow_subscribe_for_client=False,
                    tmp_path=tmp_path / "centrifugo",
                    binary=find_centrifugo(),
                    tls_cert=push_cert.cert_path,
                    tls_key=push_cert.key_path,
                )
            )
            target = PushTarget(inst.ws_url, inst.api_url, api_key, secret)
        assert target.ws_url.startswith("wss://127.0.0.1:")
        local = LocalStack(
            push=target,
            ssl_context=pki.good.server_context(),
            publish_ssl=pki.ca.client_context(),
        )
        yield await stack.enter_async_context(local)


async def _start(launch: Launch, local: LocalStack, *extra: str) -> AppProcess:
    args = headless_args(local.account.email, local.api_url, local.ws_url, *extra)
    return await launch(*args, stdin=local.account.password + "\n")


@pytest.mark.parametrize("kind", KINDS)
async def test_wss_and_https_work_with_the_ca_file(
    kind: str, pki: Pki, launch: Launch, tmp_path: Path
):
    async with tls_stack(kind, pki, pki.good, tmp_path) as local:
        assert local.api_url.startswith("https://127.0.0.1:")
        app = await _start(launch, local, "--ca-file", str(pki.ca.ca_path))
        await app.wait_line("2 of 2 channel(s) live")
        org = local.simulator.orgs_of(local.account.email)[0]
        await local.simulator.post_message(local.account.email, org.id, "general")
        await app.wait_line("Notification shown")
        assert await app.stop() == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("cert", "reason"),
    [
        ("stranger_cert", "unable to get local issuer certificate"),
        ("wrong_host", "mismatch, certificate is not valid for '127.0.0.1'"),
    ],
)
async def test_a_push_server_certificate_that_does_not_verify_is_refused_in_words(
    pki: Pki, launch: Launch, tmp_path: Path, *, kind: str, cert: str, reason: str
):
    async with tls_stack(kind, pki, getattr(pki, cert), tmp_path) as local:
        app = await _start(launch, local, "--ca-file", str(pki.ca.ca_path))
        line = await app.wait_line("State: reconnecting")
        assert "Cannot reach the push server" in line
        assert "certificate verify failed" in line
        assert reason in line
        await app.wait_line("attempt 3")  # it keeps trying, and stays up
        assert app.proc.returncode is None
        assert not any("live" in line for line in app.lines)
        assert await app.stop() == 0


@pytest.mark.parametrize(
    ("ca_file", "cert", "reason"),
    [
        (False, "good", "certificate is not trusted"),
        (True, "wrong_host", "mismatch, certificate is not valid for '127.0.0.1'"),
    ],
)
async def test_an_api_certificate_that_does_not_verify_ends_sign_in_in_words(
    ca_file: bool, cert: str, reason: str, pki: Pki, launch: Launch
):
    server_cert: ServerCert = getattr(pki, cert)
    async with LocalStack(ssl_context=server_cert.server_context()) as local:
        extra = ["--ca-file", str(pki.ca.ca_path)] if ca_file else []
        app = await _start(launch, local, *extra)
        assert await app.wait_exit() == 3
        failed = next(line for line in app.lines if "sign-in failed" in line)
        assert "Cannot reach the Telex server" in failed
        assert reason in failed
        assert local.simulator.requests == []
