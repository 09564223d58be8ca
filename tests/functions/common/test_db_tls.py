"""Database TLS (functions/common/db.py): the cloud path verifies the server's certificate (sslmode=verify-full)
against the CA bundle in DB_SSLROOTCERT. Checked with real libpq (psycopg) against a local TLS endpoint that speaks
PostgreSQL's SSL negotiation and presents a certificate from a throwaway CA: accepted with that CA and the right
host name, refused with another CA or another host name; a verifying mode without a CA file fails before
connecting. Locally (pgserver) TLS stays off through DB_SSLMODE=disable, as the local stack sets it."""

from __future__ import annotations

import datetime
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg.conninfo import conninfo_to_dict

from functions.common import db
from functions.common.errors import ConfigError

SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's SSLRequest message
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)
HANDSHAKE_DONE = "modamoda-test: TLS handshake completed"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Amazon RDS"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    *,
    dns: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=dns is None, path_length=None), critical=True)
    )
    if dns is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA named like RDS's, a server certificate it signs for ``localhost``, and an unrelated CA."""
    root = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("Amazon RDS test Root CA", ca_key)
    other = _certificate("Someone else's Root CA", other_key)
    server = _certificate("localhost", server_key, ("Amazon RDS test Root CA", ca_key), dns="localhost")
    pem = serialization.Encoding.PEM
    files = Pki(root / "ca.pem", root / "other.pem", root / "server.pem", root / "server.key")
    files.ca.write_bytes(ca.public_bytes(pem))
    files.other_ca.write_bytes(other.public_bytes(pem))
    files.cert.write_bytes(server.public_bytes(pem))
    files.key.write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.fixture(scope="module")
def tls_port(pki: Pki) -> Iterator[int]:
    """A loopback endpoint that answers PostgreSQL's SSLRequest with 'S', completes the TLS handshake with the
    server certificate, then refuses the session with an ErrorResponse (no database behind it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with client:
                client.settimeout(5)
                try:
                    request = client.recv(8)
                    if request == GSSENC_REQUEST:  # no GSSAPI encryption here: libpq falls back to SSL
                        client.sendall(b"N")
                        request = client.recv(8)
                    if request != SSL_REQUEST:
                        continue
                    client.sendall(b"S")
                    with context.wrap_socket(client, server_side=True) as tls:
                        tls.recv(4096)  # the startup message
                        fields = b"SFATAL\0C28000\0M" + HANDSHAKE_DONE.encode() + b"\0\0"
                        tls.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)
                except (OSError, ssl.SSLError):
                    continue  # the client refused our certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _secret(port: int, host: str = "localhost") -> dict[str, object]:
    return {"host": host, "port": port, "username": "modamoda_app", "password": "pw", "dbname": "modamoda"}


def _connect(dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as failure:
        psycopg.connect(dsn, connect_timeout=5)
    return str(failure.value)


def test_the_cloud_default_verifies_the_certificate_and_the_host(
    pki: Pki, tls_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_SSLMODE", raising=False)
    monkeypatch.delenv("DB_HOST", raising=False)
    monkeypatch.setenv("DB_SSLROOTCERT", str(pki.ca))
    dsn = db.secret_dsn(_secret(tls_port))
    params = conninfo_to_dict(dsn)
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == str(pki.ca)
    # The handshake succeeds: libpq trusted the certificate and its host name; the endpoint then refuses.
    assert HANDSHAKE_DONE in _connect(dsn)


def test_a_certificate_from_another_ca_is_refused(
    pki: Pki, tls_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_SSLMODE", raising=False)
    monkeypatch.delenv("DB_HOST", raising=False)
    monkeypatch.setenv("DB_SSLROOTCERT", str(pki.other_ca))
    message = _connect(db.secret_dsn(_secret(tls_port)))
    assert HANDSHAKE_DONE not in message
    assert "certificate verify failed" in message


def test_a_certificate_for_another_host_is_refused(
    pki: Pki, tls_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_SSLMODE", raising=False)
    monkeypatch.setenv("DB_HOST", "127.0.0.1")  # the certificate names localhost only
    monkeypatch.setenv("DB_SSLROOTCERT", str(pki.ca))
    message = _connect(db.secret_dsn(_secret(tls_port)))
    assert HANDSHAKE_DONE not in message
    assert "does not match host name" in message


@pytest.mark.parametrize("root", [None, "/nonexistent/rds-ca/bundle.pem"])
def test_verifying_without_a_ca_bundle_is_a_configuration_error(
    root: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_SSLMODE", raising=False)
    if root is None:
        monkeypatch.delenv("DB_SSLROOTCERT", raising=False)
    else:
        monkeypatch.setenv("DB_SSLROOTCERT", root)
    with pytest.raises(ConfigError, match="DB_SSLROOTCERT"):
        db.secret_dsn(_secret(5432))


def test_local_mode_keeps_tls_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_SSLMODE", "disable")  # what local/stack.py sets for pgserver
    monkeypatch.delenv("DB_SSLROOTCERT", raising=False)
    params = conninfo_to_dict(db.secret_dsn(_secret(5432)))
    assert params["sslmode"] == "disable"
    assert "sslrootcert" not in params
