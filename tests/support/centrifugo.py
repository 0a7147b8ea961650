"""Run a REAL Centrifugo v6 binary for tests, and talk to it without any SDK.

* :func:`find_centrifugo` locates the binary (``$CENTRIFUGO_BIN``, then ``$(go env GOPATH)/bin``,
  then ``PATH``); ``bash tests/run.sh`` installs it with
  ``go install github.com/centrifugal/centrifugo/v6@v6.9.1`` and exports ``CENTRIFUGO_BIN``.
* :func:`run_centrifugo` writes a JSON config (127.0.0.1, a free port, no usage stats, ``/health``
  on), refuses unknown config keys (``centrifugo checkconfig --strict`` plus a scan of the start-up
  log), starts the server, waits for ``/health`` and stops it on exit (SIGTERM, then SIGKILL). The
  log file is kept next to the config for failure reports. :meth:`CentrifugoInstance.kill` /
  :meth:`CentrifugoInstance.start` / :meth:`CentrifugoInstance.restart` give "Centrifugo died and
  came back on the same port" for fault-injection tests (the memory engine loses history, so the
  stream epoch changes).
* :func:`connection_token` / :func:`subscription_token` sign HS256 JWTs like the Telex backend.
* :class:`RawClient` speaks the JSON client protocol over an aiohttp WebSocket: batched frames,
  command ids, pushes, server pings and close codes — for tests that pin down what the real server
  does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import jwt

CENTRIFUGO_MODULE = "github.com/centrifugal/centrifugo/v6"
CENTRIFUGO_VERSION = "v6.9.1"

DEFAULT_HMAC_SECRET = "telex-start-tests-hmac-secret-0123456789"
DEFAULT_API_KEY = "telex-start-tests-api-key"

_checked_configs: set[tuple[str, str]] = set()

#: Log messages that mean Centrifugo ignored part of our configuration.
_CONFIG_WARNINGS = ("unknown key in configuration file", "unknown var in environment")

Duration = str | float
"""A Go duration string (``"25s"``, ``"500ms"``) or seconds as a number."""

JSON = dict[str, Any]


class CentrifugoError(RuntimeError):
    """Centrifugo could not be configured, started or stopped; the message carries its log tail."""


# --------------------------------------------------------------------------------------------
# Locating the binary
# --------------------------------------------------------------------------------------------


def _go_bin_dir() -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    try:
        out = subprocess.run(
            [go, "env", "GOBIN", "GOPATH"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    gobin = out[0].strip() if out else ""
    if gobin:
        return Path(gobin)
    gopath = out[1].strip() if len(out) > 1 else ""
    if not gopath:
        return None
    return Path(gopath.split(os.pathsep)[0]) / "bin"


def find_centrifugo() -> Path | None:
    """The Centrifugo binary to test against, or None.

    Order: ``$CENTRIFUGO_BIN`` (if set it must exist — no silent fallback), ``$(go env GOBIN)`` or
    ``$(go env GOPATH)/bin``, then ``PATH``.
    """
    env = os.environ.get("CENTRIFUGO_BIN")
    if env:
        path = Path(env)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    bindir = _go_bin_dir()
    if bindir is not None:
        candidate = bindir / "centrifugo"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("centrifugo")
    return Path(found) if found else None


def centrifugo_module_version(binary: Path) -> str | None:
    """The module version baked into a ``go install``-ed binary (``v6.9.1``), via ``go version -m``.

    ``centrifugo version`` prints ``0.0.0`` for such builds (the release version is only set by
    the release pipeline's ldflags), so the build info is the reliable source.
    """
    go = shutil.which("go")
    if go is None:
        return None
    try:
        out = subprocess.run(
            [go, "version", "-m", str(binary)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod" and parts[1] == CENTRIFUGO_MODULE:
            return parts[2]
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def go_duration(value: Duration) -> str:
    """``1.5`` → ``"1500ms"``; strings pass through unchanged."""
    if isinstance(value, str):
        return value
    millis = round(float(value) * 1000)
    if millis < 0:
        raise ValueError(f"negative duration: {value!r}")
    return f"{millis}ms"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CentrifugoSettings:
    """Everything :func:`build_config` turns into a Centrifugo v6 JSON config.

    Names follow Centrifugo's own config keys (checked against ``centrifugo defaultconfig`` of
    v6.9.1). ``extra`` is deep-merged last for anything not covered here; unknown keys still fail.
    """

    hmac_secret: str = DEFAULT_HMAC_SECRET
    api_key: str = DEFAULT_API_KEY
    allow_subscribe_for_client: bool = True
    ping_interval: Duration = "25s"
    pong_timeout: Duration = "8s"
    expired_close_delay: Duration = "25s"
    expired_sub_close_delay: Duration = "25s"
    stale_close_delay: Duration = "10s"
    history_size: int = 1000
    history_ttl: Duration = "300s"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allowed_origins: Sequence[str] = ()
    log_level: str = "info"
    shutdown_timeout: Duration = "5s"
    extra: Mapping[str, Any] = field(default_factory=dict)


def _deep_merge(base: JSON, extra: Mapping[str, Any]) -> JSON:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(settings: CentrifugoSettings, port: int) -> JSON:
    """The Centrifugo v6.9.1 JSON config for ``settings`` on ``127.0.0.1:port``.

    The default namespace (``channel.without_namespace``) holds the Telex channels
    ``"<org_uuid>/<user_uuid>"``: history + forced positioning/recovery, and client-side subscribe
    either allowed (``allow_subscribe_for_client``) or only with a subscription token (Centrifugo
    verifies subscription JWTs with ``client.token.hmac_secret_key`` unless
    ``client.subscription_token.enabled`` is set, which we leave off).
    """
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ValueError("tls_cert and tls_key go together")
    http_server: JSON = {"address": "127.0.0.1", "port": port}
    if settings.tls_cert is not None and settings.tls_key is not None:
        http_server["tls"] = {
            "enabled": True,
            "cert_pem": str(settings.tls_cert),
            "key_pem": str(settings.tls_key),
        }
    client: JSON = {
        "token": {"hmac_secret_key": settings.hmac_secret},
        "ping_interval": go_duration(settings.ping_interval),
        "pong_timeout": go_duration(settings.pong_timeout),
        "expired_close_delay": go_duration(settings.expired_close_delay),
        "expired_sub_close_delay": go_duration(settings.expired_sub_close_delay),
        "stale_close_delay": go_duration(settings.stale_close_delay),
    }
    if settings.allowed_origins:
        client["allowed_origins"] = list(settings.allowed_origins)
    config: JSON = {
        "http_server": http_server,
        "log": {"level": settings.log_level},
        "usage_stats": {"disabled": True},
        "health": {"enabled": True},
        "shutdown": {"timeout": go_duration(settings.shutdown_timeout)},
        "client": client,
        "http_api": {"key": settings.api_key},
        "channel": {
            "without_namespace": {
                "history_size": settings.history_size,
                "history_ttl": go_duration(settings.history_ttl),
                "force_positioning": True,
                "force_recovery": True,
                "allow_subscribe_for_client": settings.allow_subscribe_for_client,
            }
        },
    }
    return _deep_merge(config, settings.extra)


def _child_env() -> dict[str, str]:
    # Centrifugo reads CENTRIFUGO_* variables as config (and warns about unknown ones, e.g. our
    # own CENTRIFUGO_BIN): the config file must be the only source of configuration.
    return {k: v for k, v in os.environ.items() if not k.startswith("CENTRIFUGO_")}


# --------------------------------------------------------------------------------------------
# The running server
# --------------------------------------------------------------------------------------------


@dataclass
class CentrifugoInstance:
    """One Centrifugo server bound to ``127.0.0.1:port``; can be killed and started again."""

    binary: Path
    settings: CentrifugoSettings
    port: int
    config_path: Path
    log_path: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    start_timeout: float = 20.0
    starts: int = 0

    # ---- addresses ----
    @property
    def tls(self) -> bool:
        return self.settings.tls_cert is not None

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}/connection/websocket"

    @property
    def api_url(self) -> str:
        """Base of the server HTTP API: ``POST {api_url}/publish`` with ``X-API-Key``."""
        return f"{self.http_url}/api"

    @property
    def health_url(self) -> str:
        return f"{self.http_url}/health"

    @property
    def hmac_secret(self) -> str:
        return self.settings.hmac_secret

    @property
    def api_key(self) -> str:
        return self.settings.api_key

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---- logs ----
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_records(self) -> list[JSON]:
        """The JSON log lines (Centrifugo logs one JSON object per line)."""
        records: list[JSON] = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    records.append(obj)
        return records

    def config_warnings(self) -> list[str]:
        """Start-up warnings saying part of the configuration was ignored."""
        return [
            f"{r.get('message')}: {r.get('key') or r.get('var')}"
            for r in self.log_records()
            if r.get("level") == "warn" and r.get("message") in _CONFIG_WARNINGS
        ]

    # ---- lifecycle ----
    def check_config(self) -> None:
        """``centrifugo checkconfig --strict``: validation errors and unknown keys fail here."""
        proc = subprocess.run(
            [str(self.binary), "checkconfig", "--strict", "-c", str(self.config_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
            env=_child_env(),
        )
        if proc.returncode != 0:
            raise CentrifugoError(
                f"centrifugo checkconfig --strict rejected {self.config_path}:\n"
                f"{proc.stdout}{proc.stderr}"
            )

    async def start(self) -> None:
        """Start the server (again) on the same port and wait until ``/health`` answers."""
        if self.running:
            raise CentrifugoError("Centrifugo is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"# ---- start #{self.starts} (port {self.port}) ----\n".encode())
            log.flush()
            # Popen rather than asyncio's subprocess API: the instance must not be tied to one
            # event loop (fixtures and tests may run on different loops); spawning is quick.
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [str(self.binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                cwd=self.config_path.parent,
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.kill()
            raise
        warnings = self.config_warnings()
        if warnings:
            await self.stop()
            raise CentrifugoError("Centrifugo ignored configuration:\n" + "\n".join(warnings))

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        ssl_ctx: ssl.SSLContext | bool = not self.tls  # self-signed test certs
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise CentrifugoError(
                        f"Centrifugo exited with code {self.process.returncode} during start-up; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with session.get(self.health_url, ssl=ssl_ctx) as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise CentrifugoError(
                        f"Centrifugo not healthy after {self.start_timeout}s; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.05)

    async def _wait_exit(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self, timeout: float = 3.0) -> None:
        """Graceful stop: SIGTERM (clients get close 3001 "shutdown"), SIGKILL after ``timeout``.

        Centrifugo waits for each client to answer its close frame (up to ~5 s), so a client that
        is not reading delays the exit; read concurrently when the close matters.
        """
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        if not await self._wait_exit(timeout):
            self.process.kill()
            await self._wait_exit(5.0)

    async def kill(self) -> None:
        """Crash: SIGKILL, no close frames; clients see the TCP connection drop (close 1006)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        await self._wait_exit(5.0)

    async def restart(self, *, graceful: bool = False) -> None:
        """Kill (or stop) and start again on the same port, with the same config."""
        if graceful:
            await self.stop()
        else:
            await self.kill()
        await self.start()

    # ---- server HTTP API ----
    async def api(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> JSON:
        """Call ``POST /api/<method>``; returns ``result`` or raises on an API ``error``."""

        async def call(s: aiohttp.ClientSession) -> JSON:
            async with s.post(
                f"{self.api_url}/{method}",
                json=dict(params),
                headers={"X-API-Key": self.api_key},
                ssl=not self.tls,
            ) as resp:
                resp.raise_for_status()
                body: JSON = await resp.json()
            if "error" in body:
                raise CentrifugoError(f"API {method} failed: {body['error']}")
            result: JSON = body.get("result", {})
            return result

        if session is not None:
            return await call(session)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as own:
            return await call(own)

    async def publish(self, channel: str, data: Any, **extra: Any) -> JSON:
        """Publish through the server API; returns ``{"offset": n, "epoch": "..."}``."""
        return await self.api("publish", {"channel": channel, "data": data, **extra})


class CentrifugoFactory(Protocol):
    """The ``centrifugo`` fixture: ``await centrifugo(**run_centrifugo options)``."""

    async def __call__(self, **options: Any) -> CentrifugoInstance: ...


@contextlib.asynccontextmanager
async def run_centrifugo(
    *,
    hmac_secret: str,
    api_key: str,
    allow_subscribe_for_client: bool,
    tmp_path: Path,
    ping_interval: Duration = "25s",
    pong_timeout: Duration = "8s",
    expired_close_delay: Duration = "25s",
    expired_sub_close_delay: Duration = "25s",
    stale_close_delay: Duration = "10s",
    history_size: int = 1000,
    history_ttl: Duration = "300s",
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    allowed_origins: Sequence[str] = (),
    log_level: str = "info",
    extra: Mapping[str, Any] | None = None,
    binary: Path | None = None,
    port: int | None = None,
) -> AsyncIterator[CentrifugoInstance]:
    """Run a real Centrifugo for the duration of the ``async with`` block.

    Note Centrifugo refuses ``pong_timeout >= ping_interval`` at start-up, and the connect
    result reports ``ping`` in whole seconds.
    """
    settings = CentrifugoSettings(
        hmac_secret=hmac_secret,
        api_key=api_key,
        allow_subscribe_for_client=allow_subscribe_for_client,
        ping_interval=ping_interval,
        pong_timeout=pong_timeout,
        expired_close_delay=expired_close_delay,
        expired_sub_close_delay=expired_sub_close_delay,
        stale_close_delay=stale_close_delay,
        history_size=history_size,
        history_ttl=history_ttl,
        tls_cert=tls_cert,
        tls_key=tls_key,
        allowed_origins=tuple(allowed_origins),
        log_level=log_level,
        extra=dict(extra or {}),
    )
    async with start_centrifugo(settings, tmp_path=tmp_path, binary=binary, port=port) as inst:
        yield inst


@contextlib.asynccontextmanager
async def start_centrifugo(
    settings: CentrifugoSettings,
    *,
    tmp_path: Path,
    binary: Path | None = None,
    port: int | None = None,
) -> AsyncIterator[CentrifugoInstance]:
    """Like :func:`run_centrifugo`, taking a :class:`CentrifugoSettings`."""
    binary = binary or find_centrifugo()
    if binary is None:
        raise CentrifugoError(
            "Centrifugo binary not found: set CENTRIFUGO_BIN or run "
            f"`go install {CENTRIFUGO_MODULE}@{CENTRIFUGO_VERSION}` (bash tests/run.sh does)"
        )
    workdir = tmp_path / "centrifugo"
    workdir.mkdir(parents=True, exist_ok=True)
    attempts = 1 if port is not None else 3
    last_error: CentrifugoError | None = None
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        suffix = f"-{chosen}"
        inst = CentrifugoInstance(
            binary=binary,
            settings=settings,
            port=chosen,
            config_path=workdir / f"config{suffix}.json",
            log_path=workdir / f"centrifugo{suffix}.log",
        )
        inst.config_path.write_text(json.dumps(build_config(settings, chosen), indent=2))
        # checkconfig costs ~0.1 s: once per distinct config (the port does not matter).
        key = (str(binary), json.dumps(build_config(settings, 0), sort_keys=True))
        if key not in _checked_configs:
            await asyncio.to_thread(inst.check_config)
            _checked_configs.add(key)
        try:
            await inst.start()
        except CentrifugoError as exc:
            # Another process may have taken the free port between probe and bind: retry.
            last_error = exc
            if "address already in use" in inst.log_text() and attempt + 1 < attempts:
                continue
            raise
        try:
            yield inst
        finally:
            await inst.stop()
        return
    assert last_error is not None
    raise last_error


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def connection_token(
    secret: str,
    sub: str,
    *,
    ttl: float | None = 3600,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A Centrifugo connection JWT (``sub`` = user id; ``exp`` = now + ttl unless ttl is None)."""
    payload: JSON = {"sub": sub, **claims}
    if ttl is not None and "exp" not in payload:
        payload["exp"] = int(time.time() + ttl)
    return jwt.encode(payload, secret, algorithm=algorithm)


def subscription_token(
    secret: str,
    sub: str,
    channel: str,
    *,
    ttl: float | None = 3600,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A Centrifugo subscription JWT for ``channel`` (``sub`` must equal the connection's user)."""
    payload: JSON = {"sub": sub, "channel": channel, **claims}
    if ttl is not None and "exp" not in payload:
        payload["exp"] = int(time.time() + ttl)
    return jwt.encode(payload, secret, algorithm=algorithm)


# --------------------------------------------------------------------------------------------
# A protocol-level client (no SDK, no app code)
# --------------------------------------------------------------------------------------------


class ConnectionClosed(AssertionError):
    """The server closed the WebSocket while a test waited for something else."""

    def __init__(self, code: int | None, reason: str, waiting_for: str) -> None:
        super().__init__(f"connection closed ({code} {reason!r}) while waiting for {waiting_for}")
        self.code = code
        self.reason = reason


class RawClient:
    """Centrifugo JSON protocol over one aiohttp WebSocket, one message at a time.

    Every received message is appended to :attr:`received`; the ``wait_*`` methods consume from
    an inbox in arrival order, keeping messages they skip for later waits. Pings (``{}``) are
    answered automatically when ``auto_pong`` is set (only while the test is awaiting).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        own_session: bool,
        auto_pong: bool,
    ) -> None:
        self._session = session
        self._ws = ws
        self._own_session = own_session
        self.auto_pong = auto_pong
        self._next_id = 0
        self.inbox: deque[JSON] = deque()
        self.received: list[JSON] = []
        self.sent: list[str] = []
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        auto_pong: bool = False,
        ssl_context: ssl.SSLContext | bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> RawClient:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        try:
            ws = await session.ws_connect(
                url,
                autoping=True,
                heartbeat=None,
                max_msg_size=0,
                ssl=ssl_context,
                headers=dict(headers or {}),
            )
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, own_session=True, auto_pong=auto_pong)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._ws.closed:
            await self._ws.close()
        if self._own_session:
            await self._session.close()

    # ---- sending ----
    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send_raw(self, text: str) -> None:
        self.sent.append(text)
        await self._ws.send_str(text)

    async def send(self, *commands: JSON) -> list[int]:
        """Send commands in ONE frame (newline-separated). Commands without ``id`` get the next
        one, except the empty pong ``{}`` and ``send`` commands. Returns the ids used."""
        if not commands:
            raise ValueError("no commands: an empty frame is a protocol error (close 3501)")
        ids: list[int] = []
        lines: list[str] = []
        for command in commands:
            cmd = dict(command)
            if cmd and "id" not in cmd and "send" not in cmd:
                cmd["id"] = self.next_id()
            if "id" in cmd:
                ids.append(int(cmd["id"]))
            lines.append(json.dumps(cmd, separators=(",", ":")))
        await self.send_raw("\n".join(lines))
        return ids

    async def pong(self) -> None:
        await self.send_raw("{}")

    # ---- receiving ----
    async def _read_frame(self, timeout: float, waiting_for: str) -> bool:
        """Read one frame into the inbox; False on timeout, ConnectionClosed on close."""
        if self.closed:
            raise ConnectionClosed(self.close_code, self.close_reason, waiting_for)
        try:
            msg = await asyncio.wait_for(self._ws.receive(), timeout)
        except TimeoutError:
            return False
        if msg.type == aiohttp.WSMsgType.TEXT:
            for line in str(msg.data).split("\n"):
                if not line.strip():
                    continue
                obj = json.loads(line)
                self.received.append(obj)
                if obj == {} and self.auto_pong:
                    await self.pong()
                    continue
                self.inbox.append(obj)
            return True
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
            self.closed = True
            self.close_code = int(msg.data) if msg.data is not None else self._ws.close_code
            self.close_reason = str(msg.extra or "")
            raise ConnectionClosed(self.close_code, self.close_reason, waiting_for)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            self.closed = True
            self.close_code = self.close_code or self._ws.close_code
            raise ConnectionClosed(self.close_code, self.close_reason, waiting_for)
        raise AssertionError(f"unexpected WebSocket message {msg.type}: {msg.data!r}")

    async def wait_for(
        self, predicate: Callable[[JSON], bool], *, timeout: float = 5.0, what: str = "message"
    ) -> JSON:
        """Consume and return the first message (old or new) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in list(self.inbox):
                if predicate(msg):
                    self.inbox.remove(msg)
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._read_frame(remaining, what):
                raise AssertionError(
                    f"no {what} within {timeout}s; received so far: {self.received}"
                )

    async def wait_reply(self, command_id: int, *, timeout: float = 5.0) -> JSON:
        return await self.wait_for(
            lambda m: m.get("id") == command_id, timeout=timeout, what=f"reply id={command_id}"
        )

    async def call(self, method: str, params: Mapping[str, Any], *, timeout: float = 5.0) -> JSON:
        """Send one command and return its whole reply (``{"id":..,"<method>":{..}}`` or error)."""
        (command_id,) = await self.send({method: dict(params)})
        return await self.wait_reply(command_id, timeout=timeout)

    async def wait_ping(self, *, timeout: float = 5.0) -> JSON:
        return await self.wait_for(lambda m: m == {}, timeout=timeout, what="server ping {}")

    async def wait_pub(self, channel: str | None = None, *, timeout: float = 5.0) -> JSON:
        """Wait for a publication push; returns the ``pub`` object (with ``channel`` added)."""

        def is_pub(m: JSON) -> bool:
            push = m.get("push")
            return (
                isinstance(push, dict)
                and "pub" in push
                and (channel is None or push.get("channel") == channel)
            )

        msg = await self.wait_for(is_pub, timeout=timeout, what=f"publication on {channel}")
        pub: JSON = dict(msg["push"]["pub"])
        pub.setdefault("channel", msg["push"].get("channel"))
        return pub

    async def wait_closed(self, *, timeout: float = 5.0) -> tuple[int | None, str]:
        """Read until the server closes; returns ``(close code, reason)``."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            remaining = deadline - time.monotonic()
            timed_out = remaining <= 0
            if not timed_out:
                with contextlib.suppress(ConnectionClosed):
                    timed_out = not await self._read_frame(remaining, "close")
            if timed_out and not self.closed:
                raise AssertionError(
                    f"server did not close within {timeout}s; received: {self.received}"
                )
        return self.close_code, self.close_reason

    async def no_message(self, seconds: float) -> None:
        """Assert that nothing but pings arrives during the next ``seconds``."""
        first = len(self.received)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if not await self._read_frame(remaining, "silence"):
                break
            unexpected = [m for m in self.received[first:] if m != {}]
            if unexpected:
                raise AssertionError(f"unexpected messages: {unexpected}")

    # ---- convenience ----
    async def connect(self, token: str, *, timeout: float = 5.0, **fields: Any) -> JSON:
        """Send ``connect`` and return the reply (``connect`` result or ``error``)."""
        return await self.call("connect", {"token": token, **fields}, timeout=timeout)
