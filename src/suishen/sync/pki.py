"""The deployment PKI for mutual TLS between gateways and the hub (DESIGN §6).

A deployment CA (ECDSA P-256, what every OpenSSL-backed ``ssl`` module handles for TLS 1.2
and 1.3) signs two kinds of leaf certificate:

- the hub's server certificate: SAN DNS/IP names (default ``localhost`` and ``127.0.0.1``),
  extended key usage serverAuth;
- one client certificate per gateway: subject CN = gateway_id and SAN URI
  ``urn:suishen:gateway:<gateway_id>``, extended key usage clientAuth.  The hub binds every
  request to the gateway named there (``gateway_id_from_peercert``); both names must agree.

Files (PEM; keys PKCS#8, unencrypted, mode 0600, written atomically)::

    <dir>/ca.pem  ca.key                      the deployment CA (keep ca.key offline)
    <dir>/hub.pem hub.key                     the hub's server certificate
    <dir>/gateways/<id>.pem <id>.key          one per gateway (copy to that gateway)

Times are parameters (``now``), never read here, so tests can make expired certificates.

Revocation is not done with CRLs: the hub pins each gateway's current certificate by its
fingerprint (``certificate_sha256``: SHA-256 of the DER, hex) and refuses any other one
(central/store/gateways.py), so re-issuing a certificate and registering it at the hub
retires the old.

Exceptions::

    PkiError                    a PKI file or argument is wrong
     +-- PeerIdentityError      a verified peer certificate does not name one gateway
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from suishen.sync.files import write_atomic

GATEWAY_URI_PREFIX = "urn:suishen:gateway:"
DEFAULT_HUB_HOSTS = ("localhost", "127.0.0.1")
CA_DAYS = 3650
LEAF_DAYS = 825
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock differences between machines
_GATEWAY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")  # as gateway config ids


class PkiError(Exception):
    """A PKI file or argument is wrong."""


class PeerIdentityError(PkiError):
    """A (verified) peer certificate does not name exactly one gateway."""


@dataclasses.dataclass(frozen=True, slots=True)
class PkiLayout:
    """Where the PKI files of one deployment live."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def hub_cert(self) -> Path:
        return self.root / "hub.pem"

    @property
    def hub_key(self) -> Path:
        return self.root / "hub.key"

    def gateway_cert(self, gateway_id: str) -> Path:
        return self.root / "gateways" / f"{check_gateway_id(gateway_id)}.pem"

    def gateway_key(self, gateway_id: str) -> Path:
        return self.root / "gateways" / f"{check_gateway_id(gateway_id)}.key"


def check_gateway_id(gateway_id: str) -> str:
    if not _GATEWAY_ID.fullmatch(gateway_id):
        raise PkiError(f"gateway id must be 1-64 letters, digits, '_', '.' or '-': {gateway_id!r}")
    return gateway_id


# --------------------------------------------------------------------------- files


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_pair(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    write_atomic(key_path, _key_pem(key), mode=0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read certificate {path}: {exc}") from exc


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"cannot read private key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an EC private key")
    return key


# --------------------------------------------------------------------------- issuing


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    if now.tzinfo is None:
        raise PkiError("now must be timezone-aware")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    *, now: dt.datetime, name: str = "Suishen Gate deployment CA", days: int = CA_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (path length 0: it signs leaves only) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Suishen Gate"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    cert = (
        _builder(subject, subject, key.public_key(), now=now, days=days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _sign_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    san: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    *,
    now: dt.datetime,
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now=now, days=days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_hub_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    now: dt.datetime,
    hosts: Iterable[str] = DEFAULT_HUB_HOSTS,
    days: int = LEAF_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The hub's TLS server certificate for ``hosts`` (DNS names or IP addresses)."""
    names = [_host_name(h) for h in dict.fromkeys(hosts)]
    if not names:
        raise PkiError("the hub certificate needs at least one host name or address")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "suishen-hub")])
    return _sign_leaf(
        ca_cert, ca_key, subject, names, ExtendedKeyUsageOID.SERVER_AUTH, now=now, days=days
    )


def make_gateway_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    gateway_id: str,
    *,
    now: dt.datetime,
    days: int = LEAF_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A gateway's TLS client certificate binding ``gateway_id`` (CN and SAN URI)."""
    check_gateway_id(gateway_id)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)])
    san = [x509.UniformResourceIdentifier(GATEWAY_URI_PREFIX + gateway_id)]
    return _sign_leaf(
        ca_cert, ca_key, subject, san, ExtendedKeyUsageOID.CLIENT_AUTH, now=now, days=days
    )


def init_ca(root: Path, *, now: dt.datetime, force: bool = False) -> PkiLayout:
    """Create the deployment CA in ``root`` (refuses to replace one unless ``force``)."""
    layout = PkiLayout(Path(root))
    if layout.ca_key.exists() and not force:
        raise PkiError(f"a CA already exists in {layout.root} (use --force to replace it)")
    layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key = make_ca(now=now)
    _write_pair(layout.ca_cert, layout.ca_key, cert, key)
    return layout


def _load_ca(layout: PkiLayout) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not layout.ca_key.exists():
        raise PkiError(f"no CA in {layout.root}: run `suishen pki init` first")
    return load_certificate(layout.ca_cert), load_private_key(layout.ca_key)


def issue_hub(
    root: Path, *, now: dt.datetime, hosts: Iterable[str] = DEFAULT_HUB_HOSTS
) -> tuple[Path, Path]:
    """Issue (or re-issue) the hub's certificate; return (cert path, key path)."""
    layout = PkiLayout(Path(root))
    cert, key = make_hub_cert(*_load_ca(layout), now=now, hosts=hosts)
    _write_pair(layout.hub_cert, layout.hub_key, cert, key)
    return layout.hub_cert, layout.hub_key


def issue_gateway(root: Path, gateway_id: str, *, now: dt.datetime) -> tuple[Path, Path]:
    """Issue (or re-issue) a gateway's client certificate; return (cert path, key path)."""
    layout = PkiLayout(Path(root))
    cert, key = make_gateway_cert(*_load_ca(layout), gateway_id, now=now)
    _write_pair(layout.gateway_cert(gateway_id), layout.gateway_key(gateway_id), cert, key)
    return layout.gateway_cert(gateway_id), layout.gateway_key(gateway_id)


# --------------------------------------------------------------------------- TLS contexts


def hub_ssl_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Server context for the hub's gateway listener: TLS >= 1.2, a client certificate
    signed by the deployment CA (for clientAuth) is required."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def gateway_ssl_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Client context for a gateway: verifies the hub (CA and host name) and presents the
    gateway's certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def hub_ssl_context_for(layout: PkiLayout) -> ssl.SSLContext:
    return hub_ssl_context(layout.ca_cert, layout.hub_cert, layout.hub_key)


def gateway_ssl_context_for(layout: PkiLayout, gateway_id: str) -> ssl.SSLContext:
    return gateway_ssl_context(
        layout.ca_cert, layout.gateway_cert(gateway_id), layout.gateway_key(gateway_id)
    )


# --------------------------------------------------------------------------- peer identity


def gateway_id_from_peercert(peercert: Mapping[str, Any] | None) -> str:
    """The gateway a verified peer certificate names.

    ``peercert`` is ``SSLObject.getpeercert()`` (in aiohttp:
    ``request.transport.get_extra_info("peercert")``), which is only filled in after the
    handshake verified the chain against the CA.  The SAN URI
    ``urn:suishen:gateway:<id>`` and the subject CN must name the same single gateway.
    """
    if not peercert:
        raise PeerIdentityError("no verified client certificate")
    uris = [
        value[len(GATEWAY_URI_PREFIX) :]
        for kind, value in peercert.get("subjectAltName", ())
        if kind == "URI" and value.startswith(GATEWAY_URI_PREFIX)
    ]
    common_names = [
        value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"
    ]
    if len(uris) != 1:
        raise PeerIdentityError(f"expected one {GATEWAY_URI_PREFIX}<id> SAN, found {len(uris)}")
    (gateway_id,) = uris
    if common_names != [gateway_id]:
        raise PeerIdentityError(
            f"certificate CN {common_names!r} does not match its SAN gateway {gateway_id!r}"
        )
    try:
        return check_gateway_id(gateway_id)
    except PkiError as exc:
        raise PeerIdentityError(str(exc)) from exc


def certificate_sha256(der: bytes) -> str:
    """The fingerprint the hub pins per gateway: SHA-256 (hex) of the certificate's DER."""
    return hashlib.sha256(der).hexdigest()


def fingerprint(cert: x509.Certificate) -> str:
    """``certificate_sha256`` of a parsed certificate."""
    return certificate_sha256(cert.public_bytes(serialization.Encoding.DER))


def gateway_id_from_certificate(cert: x509.Certificate) -> str:
    """The same binding read from a parsed certificate (tools, logs; not a verification)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    peercert = {
        "subjectAltName": [
            ("URI", uri) for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        ],
        "subject": [
            [("commonName", str(attr.value))]
            for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ],
    }
    return gateway_id_from_peercert(peercert)
