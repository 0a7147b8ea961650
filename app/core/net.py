"""The one place settings become an aiohttp session: TLS always verified, extra CAs added, and an
egress guard that keeps credentials on the endpoints the user configured.

The guard checks every request the session sends, each hop of a redirect included, so the rules
hold even for code that forgets ``allow_redirects=False`` or builds a URL from server data:

* nothing leaves this computer unencrypted (``http``/``ws`` only towards loopback hosts);
* ``Authorization`` and ``X-Notification-Token`` go to the configured Telex API origin only;
* the push WebSocket opens at the configured push origin only;
* a redirect is not followed when it leaves the origin, carries credentials or is the push
  WebSocket (the REST client follows none at all).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import ResolveResult
from yarl import URL

from app import __version__
from app.config import Settings, is_loopback_host
from app.constants import APP_SLUG
from app.errors import NetworkError

#: Where systems keep their CA bundle. A frozen build carries the OpenSSL of the machine it was
#: built on, and with it that machine's CA paths (Debian's /usr/lib/ssl, a python.org macOS
#: framework dir), which may not exist where it runs; then the first of these that exists is used.
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine, BSDs
)

#: Headers that carry a Telex credential (compared case-insensitively).
CREDENTIAL_HEADERS = ("Authorization", "X-Notification-Token")

_SECURE_SCHEMES = {"https": "https", "wss": "https", "http": "http", "ws": "http"}
_DEFAULT_PORTS = {"https": 443, "http": 80}

Origin = tuple[str, str, int]

logger = logging.getLogger(__name__)


class RequestRefused(aiohttp.ClientError):
    """A request Telex Start will not send; the message says why, in words. An aiohttp error,
    not a ``TelexError``: it is raised inside aiohttp and reaches the user only as the
    ``NetworkError`` that :func:`network_error` makes of it (see app.errors)."""


def ssl_context(settings: Settings, platform: str = sys.platform) -> ssl.SSLContext:
    """System trust plus ``--ca-file``; there is deliberately no way to turn verification off.

    On Windows and macOS the OS verifies the chain (``truststore``): OpenSSL's snapshot of the
    Windows store lacks the roots Windows fetches on demand, and OpenSSL never reads the macOS
    Keychain, where companies install their roots. ``--ca-file`` is added on top either way."""
    if platform in ("win32", "darwin"):
        import truststore

        context: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    defaults = ssl.get_default_verify_paths()  # None for paths that do not exist here
    if platform not in ("win32", "darwin") and defaults.cafile is None and defaults.capath is None:
        bundle = next((path for path in CA_BUNDLES if os.path.isfile(path)), None)
        if bundle is not None:
            context.load_verify_locations(cafile=bundle)
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    return context


def http_session(
    settings: Settings, context: ssl.SSLContext, *, proxy_for: Sequence[str] = ()
) -> aiohttp.ClientSession:
    """The app's HTTP session. ``trust_env`` stays off: it would send a loopback endpoint's
    plaintext (tokens included) to an ``HTTP_PROXY``, and it adds ``~/.netrc`` passwords as
    Basic auth (which also breaks every Bearer call); the proxy is chosen by ``env_proxy`` for
    the endpoints in ``proxy_for`` (default: the Telex API and push endpoints)."""
    refuse_redirects = aiohttp.TraceConfig()
    refuse_redirects.on_request_redirect.append(_check_redirect)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            ssl=context,
            limit=settings.max_requests_in_flight * 2,
            resolver=LoopbackNameResolver(),
        ),
        headers={"User-Agent": f"{APP_SLUG}/{__version__}"},
        trust_env=False,
        proxy=env_proxy(*(proxy_for or (settings.api_url, settings.ws_url))),
        middlewares=(egress_guard(settings),),
        trace_configs=[refuse_redirects],
    )


class LoopbackNameResolver(aiohttp.ThreadedResolver):
    """``localhost`` always means this computer (RFC 6761), never what the system resolver
    makes of it: plaintext is allowed to that name only because it stays here, and a system
    without a hosts entry may ask DNS (search domains included) instead."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower() != "localhost":
            return await super().resolve(host, port, family)
        addresses = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
        return [
            ResolveResult(hostname=host, host=address, port=port, family=kind, proto=0, flags=0)
            for kind, address in addresses
            if family in (socket.AF_UNSPEC, kind)
        ]


def describe_failure(exc: aiohttp.ClientError | OSError) -> str:
    """Why a server could not be reached, in words: the same for REST and the push socket."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the server's certificate is not trusted ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{exc.host}:{exc.port} refused or unreachable ({exc.os_error.strerror or exc})"
    if isinstance(exc, aiohttp.ClientError):
        return str(exc) or type(exc).__name__
    return exc.strerror or type(exc).__name__  # a socket error aiohttp let through unwrapped


def network_error(exc: aiohttp.ClientError | OSError, what: str) -> NetworkError:
    """The one mapping of an aiohttp or socket failure to the user's :class:`NetworkError`,
    for REST and the push socket alike: ``raise network_error(exc, "the push server") from exc``.
    """
    return NetworkError(f"Cannot reach {what}: {describe_failure(exc)}.")


def env_proxy(*urls: str) -> str | None:
    """The proxy the system names for these https/wss endpoints (``HTTPS_PROXY``, else
    ``ALL_PROXY``; ``NO_PROXY`` honoured; the registry on Windows, system settings on macOS),
    or None. ``HTTP_PROXY`` is for plain http, which never leaves this computer.

    Never when an endpoint is on loopback: plaintext is allowed there only because it stays on
    this computer. TLS to the server is verified end to end through the proxy's tunnel. Only
    an http(s) proxy can carry that tunnel; another kind (socks) is ignored with a warning.
    """
    hosts = [URL(url).host or "" for url in urls]
    if any(is_loopback_host(host) for host in hosts):
        return None
    if all(urllib.request.proxy_bypass(host) for host in hosts):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get("https") or proxies.get("all") or None
    if proxy is not None and (scheme := URL(proxy).scheme) not in ("http", "https"):
        logger.warning("Ignoring the %s:// proxy: only http:// and https:// proxies work", scheme)
        return None
    return proxy


def origin_of(url: URL | str) -> Origin:
    """(scheme family, host, port): ``wss://h`` and ``https://h`` are one origin for this app."""
    url = URL(url) if isinstance(url, str) else url
    family = _SECURE_SCHEMES.get(url.scheme, url.scheme)
    port = url.explicit_port or _DEFAULT_PORTS.get(family, 0)
    return family, (url.host or "").lower().rstrip("."), port


def _show(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def egress_guard(settings: Settings) -> aiohttp.ClientMiddlewareType:
    """A session middleware that refuses requests breaking the rules in this module's docstring."""
    api, push = origin_of(settings.api_url), origin_of(settings.ws_url)

    async def guard(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        url = request.url
        target = origin_of(url)
        if target[0] != "https" and not is_loopback_host(url.host):
            raise RequestRefused(
                f"refused to send a request to {url.host} without encryption; only https:// and "
                "wss:// may leave this computer"
            )
        credentials = [h for h in CREDENTIAL_HEADERS if h in request.headers]
        if credentials and target != api:
            raise RequestRefused(
                f"refused to send {' and '.join(credentials)} to {_show(target)}; "
                f"Telex credentials only go to the Telex API at {_show(api)}"
            )
        if _is_websocket(request.headers) and target != push:
            raise RequestRefused(
                f"refused to open a WebSocket to {_show(target)}; "
                f"the push connection only goes to {_show(push)}"
            )
        return await handler(request)

    return guard


def _is_websocket(headers: Mapping[str, str]) -> bool:
    return headers.get("Upgrade", "").lower() == "websocket"


async def _check_redirect(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestRedirectParams,
) -> None:
    """Runs before aiohttp follows a redirect; raising stops it (the response is closed)."""
    location = params.response.headers.get("Location", "")
    try:
        target = origin_of(params.url.join(URL(location)))
    except ValueError:
        target = ("", "", 0)
    credentials = [h for h in CREDENTIAL_HEADERS if h in params.headers]
    if target != origin_of(params.url) or credentials or _is_websocket(params.headers):
        raise RequestRefused(
            f"{params.url.host} answered with a redirect (HTTP {params.response.status}); "
            "Telex Start does not follow redirects that leave the server, carry credentials "
            "or open the push connection"
        )
