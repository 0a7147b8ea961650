"""TLS trust per OS (app.core.net.ssl_context): Windows and macOS hand the chain to the OS verifier
through truststore, with --ca-file on top; Linux keeps OpenSSL with the distribution's bundle.
truststore is faked here: its real verifier (SChannel's CertGetCertificateChain, the macOS
Security framework) exists only on those systems."""

from __future__ import annotations

import dataclasses
import ssl
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import trustme

from app.config import Settings, load_settings
from app.core import net


class FakeTruststoreContext(ssl.SSLContext):
    """Records what the app asks of it, as ``truststore.SSLContext`` (an SSLContext) would get."""

    loaded: list[dict[str, Any]]

    def __new__(cls, protocol: int = ssl.PROTOCOL_TLS_CLIENT) -> FakeTruststoreContext:
        context = super().__new__(cls, protocol)
        context.loaded = []
        return context

    def load_verify_locations(self, cafile: Any = None, capath: Any = None, cadata: Any = None):
        self.loaded.append({"cafile": cafile, "capath": capath, "cadata": cadata})
        super().load_verify_locations(cafile, capath, cadata)


@pytest.fixture
def fake_truststore(monkeypatch: pytest.MonkeyPatch) -> type[FakeTruststoreContext]:
    module = types.ModuleType("truststore")
    module.SSLContext = FakeTruststoreContext  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "truststore", module)
    return FakeTruststoreContext


def settings_for(tmp_path: Path, ca_file: str | None = None) -> Settings:
    settings = load_settings({"config_dir": str(tmp_path), "ca_file": ca_file}, environ={})
    return dataclasses.replace(settings, log_dir=tmp_path)


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_windows_and_macos_ask_the_os_and_still_add_the_ca_file(
    fake_truststore: type[FakeTruststoreContext], tmp_path: Path, platform: str
):
    ca_file = tmp_path / "corporate-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))

    context = net.ssl_context(settings_for(tmp_path, str(ca_file)), platform)

    assert isinstance(context, fake_truststore)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    # no OpenSSL bundle from the disk: the OS decides; only the user's own file is added
    assert context.loaded == [{"cafile": str(ca_file), "capath": None, "cadata": None}]


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_without_a_ca_file_nothing_is_loaded_beside_the_os(
    fake_truststore: type[FakeTruststoreContext], tmp_path: Path, platform: str
):
    context = net.ssl_context(settings_for(tmp_path), platform)
    assert isinstance(context, fake_truststore)
    assert context.loaded == []


def test_linux_keeps_openssl_and_its_bundle(
    fake_truststore: type[FakeTruststoreContext], tmp_path: Path
):
    context = net.ssl_context(settings_for(tmp_path), "linux")
    assert not isinstance(context, fake_truststore)
    assert context.cert_store_stats()["x509_ca"] or ssl.get_default_verify_paths().capath


def test_the_real_truststore_is_pinned_and_verifies_with_a_ca_file(tls_server, tmp_path: Path):
    """The pinned package itself (on Linux it verifies through OpenSSL): the CA from --ca-file
    is trusted through its context, as the self-test's handshake would do on Windows and macOS."""
    import truststore

    from app.selftest import check_tls_handshake

    ca, port = tls_server
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(ca_file))
    status, detail = check_tls_handshake(context, f"https://localhost:{port}")
    assert (status, detail.split(" (")[0]) == ("pass", f"localhost:{port} verified")
    requirements = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text()
    assert f"truststore=={truststore.__version__}\n" in requirements


def test_the_self_test_counts_no_store_where_the_os_verifies():
    """truststore's context has no OpenSSL store to count (cert_store_stats raises)."""
    import truststore

    from app.selftest import check_ca_store

    status, detail = check_ca_store(truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert (status, detail) == ("pass", "the system verifies certificates (truststore._api)")
