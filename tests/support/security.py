"""Helpers of the security suite: the app as a subprocess in a private file tree, a ledger of
every credential the Telex API simulator hands out, scanners for files and ``/proc``, a local
certificate authority (and :class:`Pki`, the suite's set of certificates), a stack watched by
the ledger from the start, and a recording loopback server (the fixtures are in
tests/security/conftest.py).

The ledger observes the simulator from outside (its public ``app``: a response hook and a
middleware added before it starts), so the simulator itself needs no test-only accessor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import trustme
from aiohttp import web

from app.config import Settings, load_settings
from devstack.stack import LocalStack, PushTarget
from devstack.telex_api import TelexApiSimulator
from tests.support.app_process import AppProcess, launch
from tests.support.app_process import headless_args as shared_headless_args
from tests.support.centrifugo import find_centrifugo, run_centrifugo

ROOT = Path(__file__).resolve().parents[2]

#: Fast timings for subprocess runs (environment overrides, see app/config.py).
FAST_ENV = {
    "TELEX_RECONNECT_MIN_DELAY": "0.05",
    "TELEX_RECONNECT_MAX_DELAY": "0.3",
    "TELEX_RETRY_MIN_DELAY": "0.01",
    "TELEX_RETRY_MAX_DELAY": "0.02",
    "TELEX_REQUEST_TIMEOUT": "5",
    "TELEX_CONNECT_TIMEOUT": "5",
}


# ---------------------------------------------------------------------------------------------
# The app as a subprocess
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivateTree:
    """Everything the app may write to: home, XDG dirs and the temp dir, under one root."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEX_")}
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_STATE_HOME=str(self.home / ".local/state"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_DATA_HOME=str(self.home / ".local/share"),
            TMPDIR=str(self.tmp),
            TEMP=str(self.tmp),
            TMP=str(self.tmp),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    def make(self) -> None:
        for path in (self.home, self.tmp):
            path.mkdir(parents=True, exist_ok=True)

    def log_files(self) -> list[Path]:
        return sorted(p for p in self.home.rglob("telex-start.log*") if p.is_file())


Launch = Callable[..., Awaitable[AppProcess]]


async def launch_app(
    tree: PrivateTree, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> AppProcess:
    """The app with every folder it may write to (home, XDG, temp) inside ``tree``."""
    tree.make()
    return await launch(
        args, home=tree.home, stdin=stdin, env={**tree.env(), **FAST_ENV, **(env or {})}
    )


def headless_args(email: str, api_url: str, ws_url: str, *extra: str) -> list[str]:
    return shared_headless_args(email, api_url, ws_url, "--notifier", "log", *extra)


# ---------------------------------------------------------------------------------------------
# What the simulator hands out, and what it receives
# ---------------------------------------------------------------------------------------------

_TOKEN_KEYS = ("access_token", "notification_token", "token")


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TokenLedger:
    """Every credential the simulator issued (by kind) and every request it received."""

    issued: dict[str, str] = field(default_factory=dict, repr=False)  # token -> kind
    requests: list[ApiRequest] = field(default_factory=list, repr=False)

    def attach(self, simulator: TelexApiSimulator) -> None:
        """Observe ``simulator``; call before it starts (its application is frozen then)."""
        simulator.app.on_response_prepare.append(self._on_response)
        simulator.app.middlewares.append(self._record_request)

    def tokens(self, *kinds: str) -> list[str]:
        return [t for t, kind in self.issued.items() if not kinds or kind in kinds]

    def count(self, kind: str) -> int:
        return sum(1 for k in self.issued.values() if k == kind)

    async def _on_response(self, request: web.Request, response: web.StreamResponse) -> None:
        body = getattr(response, "body", None)
        if not isinstance(body, bytes | bytearray):
            return
        try:
            document = json.loads(body)
        except ValueError:
            return
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, dict):
            return
        for key in _TOKEN_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                self.issued[value] = _kind_of(key, value)

    @web.middleware
    async def _record_request(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else b""
        self.requests.append(ApiRequest(request.method, request.path, dict(request.headers), body))
        return await handler(request)


def _kind_of(key: str, value: str) -> str:
    if key != "token":
        return key
    claims = jwt_claims(value)
    return "subscription" if "channel" in claims else "connection"


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the tests only need to know what a token is for)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


# ---------------------------------------------------------------------------------------------
# Scanners
# ---------------------------------------------------------------------------------------------


def encodings_of(secret: str) -> set[bytes]:
    """The forms a secret takes in a file: as is, JSON-escaped, URL-encoded, base64."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        repr(secret)[1:-1],
    }
    encoded = {form.encode() for form in forms}
    encoded.add(base64.b64encode(secret.encode()))
    encoded.add(secret.encode("utf-16-le"))
    return encoded


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if not root.exists():
            continue
        for dirpath, _dirs, names in os.walk(root, followlinks=False):
            for name in names:
                path = Path(dirpath) / name
                if path.is_file() and not path.is_symlink():
                    yield path


def find_secrets(
    blobs: Iterable[tuple[str, bytes]], secrets: dict[str, str]
) -> list[tuple[str, str]]:
    """(where, which secret) for every secret found in any blob, in any of its encodings."""
    needles = {name: encodings_of(value) for name, value in secrets.items()}
    found = []
    for where, data in blobs:
        for name, forms in needles.items():
            if any(form in data for form in forms):
                found.append((where, name))
    return found


def read_files(*roots: Path) -> list[tuple[str, bytes]]:
    return [(str(path), path.read_bytes()) for path in files_under(*roots)]


def proc_blobs(pid: int) -> list[tuple[str, bytes]]:
    """The process's command line and environment as the kernel shows them to other processes."""
    return [
        (f"/proc/{pid}/cmdline", Path(f"/proc/{pid}/cmdline").read_bytes()),
        (f"/proc/{pid}/environ", Path(f"/proc/{pid}/environ").read_bytes()),
    ]


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the process's open sockets (as /proc/net/* lists them)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listening_sockets(pid: int) -> list[str]:
    """The process's sockets that listen on a network interface (TCP LISTEN, bound UDP)."""
    inodes = socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            listening = state == "0A" if table.startswith("tcp") else True
            if inode in inodes and listening:
                found.append(f"{table} {local}")
    return found


def core_file_limit(pid: int) -> str:
    """The process's soft "Max core file size" as the kernel enforces it ("0": no core file)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return line.split()[4]
    raise AssertionError(f"no core file limit for {pid}")


def peak_memory_kib(pid: int) -> int:
    """VmHWM: the most resident memory the process has used so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


# ---------------------------------------------------------------------------------------------
# A local certificate authority
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerCert:
    cert: trustme.LeafCert
    cert_path: Path  # the chain, leaf first (what Centrifugo's cert_pem wants)
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context


@dataclass(frozen=True)
class LocalCA:
    ca: trustme.CA
    ca_path: Path
    directory: Path

    @classmethod
    def create(cls, directory: Path, name: str = "ca") -> LocalCA:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca_path = directory / f"{name}.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        return cls(ca, ca_path, directory)

    def issue(self, *hosts: str, name: str) -> ServerCert:
        cert = self.ca.issue_cert(*hosts)
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key_path))
        return ServerCert(cert, cert_path, key_path)

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting this CA only (for test-side clients such as publishers)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@dataclass(frozen=True)
class Pki:
    """One CA with a certificate for 127.0.0.1, one for a wrong name, and a stranger CA."""

    ca: LocalCA
    good: ServerCert  # 127.0.0.1 and localhost
    wrong_host: ServerCert  # same CA, issued for another name
    stranger: LocalCA  # a CA the app is never told about
    stranger_cert: ServerCert  # 127.0.0.1, signed by the stranger


def settings_for(tmp_path: Path, **cli: Any) -> Settings:
    """Settings as the app builds them, from an empty private config dir and no environment."""
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    return load_settings({**cli, "config_dir": str(config_dir)}, {})


@contextlib.asynccontextmanager
async def observed_stack(
    kind: str, connect_subs: bool, tmp_path: Path, ledger: TokenLedger, **options: Any
) -> AsyncIterator[LocalStack]:
    """Like tests/e2e ``local_stack``, with ``ledger`` watching the simulator from the start."""
    async with contextlib.AsyncExitStack() as stack:
        if kind == "builtin":
            local = LocalStack(allow_subscribe_for_client=connect_subs, **options)
        else:
            inst = await stack.enter_async_context(
                run_centrifugo(
                    hmac_secret=secrets.token_urlsafe(32),
                    api_key=secrets.token_urlsafe(24),
                    allow_subscribe_for_client=connect_subs,
                    tmp_path=tmp_path / "centrifugo",
                    binary=find_centrifugo(),
                )
            )
            target = PushTarget(inst.ws_url, inst.api_url, inst.api_key, inst.hmac_secret)
            local = LocalStack(push=target, **options)
        ledger.attach(local.simulator)
        yield await stack.enter_async_context(local)


@dataclass
class Recorder:
    """A loopback HTTP + WebSocket server that answers 200 and remembers everything it got."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/connection/websocket"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.frames.append(msg.data)
            return ws
        return web.json_response({"data": {"token": "recorded"}})


Serve = Callable[..., Awaitable[str]]


def redirect_to(target: str, status: int = 307) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler that redirects every request to ``target`` + the same path."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, headers={"Location": target + request.path_qs})

    return handler


async def no_requests_for(recorder: Recorder, seconds: float = 0.2) -> None:
    """Give stray requests a moment to arrive, then insist there were none."""
    await asyncio.sleep(seconds)
    assert recorder.requests == [], recorder.requests
    assert recorder.frames == [], recorder.frames
