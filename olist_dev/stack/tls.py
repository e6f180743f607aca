"""The local stack's certificates: a private CA and server certificates for the broker's TLS
listeners and PostgreSQL, made with Python's `cryptography` (nothing downloaded), once.

Everything lives in ``<stack_dir>/tls``: ``ca.crt`` is what clients trust (OLIST_KAFKA_SSL_CAFILE,
OLIST_PG_SSLROOTCERT); keys are 0600. The server certificates name 127.0.0.1 and localhost, so
clients can verify the host name (Kafka's ssl_check_hostname, libpq's verify-full).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from olist_dev.stack.common import write_private

VALID_DAYS = 825  # the longest validity clients commonly accept for a server certificate


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path

    def cert(self, name: str) -> Path:
        return self.ca_cert.with_name(f"{name}.crt")

    def key(self, name: str) -> Path:
        return self.ca_cert.with_name(f"{name}.key")

    def pem(self, name: str) -> Path:
        """Key and certificate chain in one file (Kafka's PEM keystore)."""
        return self.ca_cert.with_name(f"{name}.pem")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "olist local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: what both Kafka's PEM keystore and PostgreSQL read.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(common_name: str = "olist local CA") -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue(
    ca_cert_pem: bytes, ca_key_pem: bytes, common_name: str, hosts: list[str], client: bool = False
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) signed by the CA, for ``hosts`` (DNS names or IP addresses);
    a server certificate, or a client one (mutual TLS) with ``client``."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


LOCAL_HOSTS = ["127.0.0.1", "localhost"]


def ensure_tls(directory: Path) -> TlsFiles:
    """The CA and the certificates of the broker, PostgreSQL and a test client, made once."""
    files = TlsFiles(directory / "ca.crt", directory / "ca.key")
    if not files.ca_cert.exists() or not files.ca_key.exists():
        cert, key = make_ca()
        write_private(files.ca_key, key)
        files.ca_cert.write_bytes(cert)
    ca_cert, ca_key = files.ca_cert.read_bytes(), files.ca_key.read_bytes()
    for name, client in (("broker", False), ("postgres", False), ("client", True)):
        if files.cert(name).exists() and files.key(name).exists() and files.pem(name).exists():
            continue
        cert, key = issue(ca_cert, ca_key, f"olist {name}", LOCAL_HOSTS, client=client)
        write_private(files.key(name), key)
        write_private(files.pem(name), key + cert)
        files.cert(name).write_bytes(cert)
    return files
