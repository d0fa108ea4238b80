"""What `gateway run` needs before it starts, checked the same way by `gateway check-config`.

A loaded config is well-formed (gateway/config validates every value); this module checks what
only the machine can say: the files it names are there, readable and parse as what they should
be, the pepper is set and long enough, the ports it will listen on are free, and (a warning only)
the hub answers. Each problem is a Finding naming the setting, the path or address, and what to
do, so an operator's mistake is one line, never a traceback:

    error   privacy.pepper_env: environment variable SUISHEN_PEPPER is not set: ...
    error   hub.client_key: cannot read pki/gw-1.key (No such file or directory): ...
    error   http.port: 127.0.0.1:9180 is in use: another gateway? ...
    warning hub.url: https://127.0.0.1:8443 does not answer (Connection refused): ...
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from suishen.gateway.config import ConfigError, GatewayConfig, TcpScannerSettings
from suishen.protocol.errors import TrustListError
from suishen.protocol.trust import TrustList

HUB_PROBE_TIMEOUT_S = 3.0
PEPPER_FIX = (
    "the deployment pepper (at least 16 bytes, the same for every gateway and the hub) goes in "
    "the file privacy.pepper_file names (0600) or the variable privacy.pepper_env names"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem: ``error`` stops `run`; ``warning`` is reported and `run` goes on."""

    level: Literal["error", "warning"]
    setting: str
    message: str

    def line(self) -> str:
        return f"{self.level:<7} {self.setting}: {self.message}"


def check_files(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> list[Finding]:
    """Pepper, pinned keys, trust file, hub TLS files and the journal's folder."""
    found: list[Finding] = []
    found += [
        Finding(level=f.level, setting=f.setting, message=f"{f.message}: {PEPPER_FIX}")
        for f in _config_errors(lambda: config.privacy.read_pepper(environ), "privacy.pepper")
    ]
    found += _config_errors(config.privacy.read_hub_seal_key, "privacy.hub_seal_key_file")
    found += _config_errors(config.lists.read_bundle_key, "lists.bundle_key_file")
    found += _config_errors(config.hours.read_calendar, "hours.calendar_file")
    if config.lists.trust_file is not None:
        found += _trust_file(config.lists.trust_file)
    if config.hub is not None:
        found += _hub_tls(config.hub.ca, config.hub.client_cert, config.hub.client_key)
    found += _writable_folder(config.journal.path.parent, "journal.path")
    found += _writable_folder(config.lists.directory, "lists.directory")
    return found


def check_ports(config: GatewayConfig) -> list[Finding]:
    """The local HTTP listener's port and every TCP scanner that listens."""
    wanted = [("http.port", config.http.host, config.http.port)]
    for index, lane in enumerate(config.lanes):
        scanner = lane.scanner
        if isinstance(scanner, TcpScannerSettings) and scanner.mode == "listen":
            wanted.append((f"lanes[{index}].scanner.port", scanner.host, scanner.port))
    return [f for setting, host, port in wanted for f in _port_free(setting, host, port)]


async def check_hub(config: GatewayConfig, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> list[Finding]:
    """A warning when the hub's address does not accept a connection (the gateway runs
    offline on its last lists and uploads later, so this never stops it)."""
    if config.hub is None:
        return []
    parts = urlsplit(config.hub.url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return [
            Finding(
                level="warning",
                setting="hub.url",
                message=f"{config.hub.url} does not answer ({why}): the gateway will run "
                "offline and upload when the hub is up; check the hub runs and the address",
            )
        ]
    writer.close()
    return []


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


# --------------------------------------------------------------------------- the checks


def _config_errors(read: object, setting: str) -> list[Finding]:
    try:
        read()  # type: ignore[operator]
    except ConfigError as exc:
        return [
            Finding(level="error", setting=problem.path or setting, message=problem.message)
            for problem in exc.problems
        ]
    return []


def _trust_file(path: Path) -> list[Finding]:
    setting = "lists.trust_file"
    try:
        TrustList.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        why = exc.strerror or str(exc)
        return [
            _error(
                setting,
                f"cannot read {path} ({why}): make the trust file or remove the "
                "setting (a connected gateway gets its trust list from the hub)",
            )
        ]
    except (ValueError, TrustListError) as exc:
        return [_error(setting, f"{path} is not a trust file: {exc}")]
    return []


def _hub_tls(ca: Path, cert: Path, key: Path) -> list[Finding]:
    for setting, path in (("hub.ca", ca), ("hub.client_cert", cert), ("hub.client_key", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            why = exc.strerror or str(exc)
            fix = "`suishen site init` writes it; or point the setting at the file"
            return [_error(setting, f"cannot read {path} ({why}): {fix}")]
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, ValueError) as exc:
        return [_error("hub.ca", f"{ca} is not a PEM certificate ({exc})")]
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        return [
            _error(
                "hub.client_key",
                f"{cert} and {key} are not a certificate and its private key ({exc.reason}): "
                "issue them again with `suishen hub gateway reissue`",
            )
        ]
    return []


def _writable_folder(folder: Path, setting: str) -> list[Finding]:
    probe = folder
    while not probe.exists():  # the gateway makes missing folders (0700) where it may
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return [_error(setting, f"{probe} is not a folder")]
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        return [_error(setting, f"{probe} is not writable by this user: fix its owner or mode")]
    return []


def _port_free(setting: str, host: str, port: int) -> list[Finding]:
    if port == 0:
        return []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "is in use (another gateway or program listens there): stop it or change"
            elif exc.errno == errno.EACCES:
                why = "needs privileges (a port below 1024): use a port >= 1024 for"
            else:
                why = f"cannot be bound ({exc.strerror}): change"
            return [_error(setting, f"{host}:{port} {why} {setting}")]
    return []


def _error(setting: str, message: str) -> Finding:
    return Finding(level="error", setting=setting, message=message)
