"""The deployment PKI: certificates, files, and mutual TLS on a real loopback aiohttp server."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from suishen.cli import main
from suishen.sync import pki

NOW = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
GATEWAY = "gw-east-1"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> pki.PkiLayout:
    """A CA with the hub's certificate and two gateways' certificates."""
    root = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)  # the TLS stack checks validity against the real clock
    layout = pki.init_ca(root, now=now)
    pki.issue_hub(root, now=now)
    pki.issue_gateway(root, GATEWAY, now=now)
    pki.issue_gateway(root, "gw-west-2", now=now)
    return layout


@pytest.fixture(scope="module")
def other_deployment(tmp_path_factory: pytest.TempPathFactory) -> pki.PkiLayout:
    """Another deployment's CA, issuing a certificate for the same gateway id and a hub."""
    root = tmp_path_factory.mktemp("other-pki")
    now = dt.datetime.now(dt.UTC)
    layout = pki.init_ca(root, now=now)
    pki.issue_hub(root, now=now)
    pki.issue_gateway(root, GATEWAY, now=now)
    return layout


PEER = web.AppKey("peer", list)


async def _whoami(request: web.Request) -> web.Response:
    peercert = request.transport.get_extra_info("peercert") if request.transport else None
    gateway_id = pki.gateway_id_from_peercert(peercert)
    request.app[PEER].append(gateway_id)
    return web.json_response({"gateway_id": gateway_id})


@pytest.fixture
async def hub_url(deployment: pki.PkiLayout) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 (random port) with the hub's mutual-TLS context."""
    app = web.Application()
    app[PEER] = []
    app.router.add_get("/whoami", _whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.hub_ssl_context_for(deployment))
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}/whoami"
    finally:
        await runner.cleanup()


async def _get(url: str, ctx: ssl.SSLContext) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=ctx) as response,
    ):
        response.raise_for_status()
        return await response.json()


async def test_gateway_certificate_binds_its_id(deployment: pki.PkiLayout, hub_url: str) -> None:
    """A gateway with its certificate connects; the handler reads that gateway's id."""
    for gateway_id in (GATEWAY, "gw-west-2"):
        ctx = pki.gateway_ssl_context_for(deployment, gateway_id)
        assert await _get(hub_url, ctx) == {"gateway_id": gateway_id}


async def test_client_without_certificate_is_refused(
    deployment: pki.PkiLayout, hub_url: str
) -> None:
    """A client that trusts the hub but presents no certificate never reaches the handler."""
    ctx = ssl.create_default_context(cafile=str(deployment.ca_cert))
    with pytest.raises(aiohttp.ClientError):
        await _get(hub_url, ctx)


async def test_certificate_from_another_ca_is_refused(
    deployment: pki.PkiLayout, other_deployment: pki.PkiLayout, hub_url: str
) -> None:
    """Another CA's certificate for the same gateway id is refused by the hub."""
    ctx = pki.gateway_ssl_context(
        deployment.ca_cert,  # trusts our hub, so only the client side can fail
        other_deployment.gateway_cert(GATEWAY),
        other_deployment.gateway_key(GATEWAY),
    )
    with pytest.raises(aiohttp.ClientError):
        await _get(hub_url, ctx)


async def test_hub_certificate_is_not_a_client_certificate(
    deployment: pki.PkiLayout, hub_url: str
) -> None:
    """The hub's own certificate (serverAuth only) cannot log in as a client."""
    ctx = pki.gateway_ssl_context(deployment.ca_cert, deployment.hub_cert, deployment.hub_key)
    with pytest.raises(aiohttp.ClientError):
        await _get(hub_url, ctx)


async def test_gateway_refuses_a_hub_from_another_ca(
    other_deployment: pki.PkiLayout, hub_url: str
) -> None:
    """A gateway of another deployment does not trust our hub (server verification)."""
    ctx = pki.gateway_ssl_context_for(other_deployment, GATEWAY)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get(hub_url, ctx)


def test_certificates_carry_the_bindings(deployment: pki.PkiLayout) -> None:
    """CA is a path-length-0 CA; hub SANs are localhost and 127.0.0.1; a gateway's CN and URI
    both name it, with clientAuth only."""
    ca = pki.load_certificate(deployment.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    hub = pki.load_certificate(deployment.hub_cert)
    san = hub.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    gateway = pki.load_certificate(deployment.gateway_cert(GATEWAY))
    assert pki.gateway_id_from_certificate(gateway) == GATEWAY
    eku = gateway.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(pki.PeerIdentityError):
        pki.gateway_id_from_certificate(hub)


def test_keys_are_private(deployment: pki.PkiLayout) -> None:
    """Every private key file is mode 0600."""
    for key in (deployment.ca_key, deployment.hub_key, deployment.gateway_key(GATEWAY)):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


@pytest.mark.parametrize(
    ("peercert", "message"),
    [
        (None, "no verified client certificate"),
        ({}, "no verified client certificate"),
        ({"subject": ((("commonName", "gw-1"),),)}, "found 0"),
        (
            {
                "subject": ((("commonName", "gw-1"),),),
                "subjectAltName": (("URI", "urn:suishen:gateway:gw-2"),),
            },
            "does not match",
        ),
        (
            {
                "subject": ((("commonName", "gw-1"),),),
                "subjectAltName": (
                    ("URI", "urn:suishen:gateway:gw-1"),
                    ("URI", "urn:suishen:gateway:gw-2"),
                ),
            },
            "found 2",
        ),
        (
            {
                "subject": ((("commonName", "../x"),),),
                "subjectAltName": (("URI", "urn:suishen:gateway:../x"),),
            },
            "gateway id must be",
        ),
    ],
)
def test_peer_identity_must_be_one_consistent_gateway(
    peercert: dict[str, object] | None, message: str
) -> None:
    """Missing, conflicting, doubled or malformed gateway names are refused."""
    with pytest.raises(pki.PeerIdentityError, match=message):
        pki.gateway_id_from_peercert(peercert)


def test_custom_hub_hosts_and_refusing_to_replace_the_ca(tmp_path: Path) -> None:
    """issue-hub takes other names and addresses; init does not overwrite a CA by accident."""
    pki.init_ca(tmp_path, now=NOW)
    cert_path, _ = pki.issue_hub(tmp_path, now=NOW, hosts=["hub.example", "10.0.0.5", "::1"])
    san = pki.load_certificate(cert_path).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["hub.example"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["10.0.0.5", "::1"]
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.init_ca(tmp_path, now=NOW)
    with pytest.raises(pki.PkiError, match="gateway id"):
        pki.issue_gateway(tmp_path, "bad/id", now=NOW)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`suishen pki init | issue-hub | issue-gateway` write the layout; errors exit 2."""
    root = tmp_path / "pki"
    assert main(["pki", "issue-hub", "--dir", str(root)]) == 2
    assert "pki init" in capsys.readouterr().err
    assert main(["pki", "init", "--dir", str(root)]) == 0
    assert main(["pki", "init", "--dir", str(root)]) == 2
    assert main(["pki", "issue-hub", "--dir", str(root), "--host", "hub.local"]) == 0
    assert main(["pki", "issue-gateway", "gw-9", "--dir", str(root)]) == 0
    layout = pki.PkiLayout(root)
    assert pki.gateway_id_from_certificate(pki.load_certificate(layout.gateway_cert("gw-9"))) == (
        "gw-9"
    )
    assert layout.hub_key.exists()


def test_issue_gateway_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `pki issue-gateway` for the same id would silently replace a certificate the
    gateway (and the hub's pin) still use: it is refused with a one-line pointer to the
    rotation procedure, and the files stay as they were; `--force` replaces them."""
    root = tmp_path / "pki"
    assert main(["pki", "init", "--dir", str(root)]) == 0
    assert main(["pki", "issue-gateway", "gw-9", "--dir", str(root)]) == 0
    layout = pki.PkiLayout(root)
    before = layout.gateway_cert("gw-9").read_bytes(), layout.gateway_key("gw-9").read_bytes()
    capsys.readouterr()
    assert main(["pki", "issue-gateway", "gw-9", "--dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--force" in err and "hub gateway reissue" in err and "gw-9" in err
    after = layout.gateway_cert("gw-9").read_bytes(), layout.gateway_key("gw-9").read_bytes()
    assert after == before
    assert main(["pki", "issue-gateway", "gw-9", "--dir", str(root), "--force"]) == 0
    assert layout.gateway_cert("gw-9").read_bytes() != before[0]
    capsys.readouterr()
    assert main(["pki", "issue-gateway", "bad/id", "--dir", str(root)]) == 2
    assert capsys.readouterr().err.startswith("suishen pki: gateway id must be")
