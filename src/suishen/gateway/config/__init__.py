"""The gateway's configuration: one TOML file -> one frozen dataclass tree, validated at start.

The generic loader (typed settings, help text, key-path errors, Markdown) is suishen.settings;
this package holds the gateway's definitions, one module per part::

    sections    gateway, site, lists, verify, privacy, http, display, hub, logging
    hardware    lane devices by kind (serial/TCP/OSDP/UHPPOTE scanners, Modbus/UHPPOTE/OSDP
                gates, indicators), [[uhppote]] controllers, [[osdp]] buses, [[lanes]]
    checks      id and env-name checks, key parsing, read_secret
    tree        GatewayConfig with its checks across sections, load_config, settings_markdown

    config = load_config("deploy/config/office-building.toml")   # -> GatewayConfig
    config.lanes[0].gate.coil

Every problem in a file is reported at once with its key path (ConfigError.problems).
Secrets (the person-key pepper, OSDP secure-channel keys) are never written in the file: it
names a file or an environment variable. ``settings_markdown()`` renders every setting as
deploy/config/SETTINGS.md (a test keeps the committed file equal to it); ``suishen gateway
settings`` prints it.
"""

from suishen.gateway.config.checks import read_secret
from suishen.gateway.config.hardware import (
    FramingSettings,
    GateSettings,
    IndicatorSettings,
    LaneSettings,
    ModbusGateSettings,
    NoGateSettings,
    OsdpBusSettings,
    OsdpGateSettings,
    OsdpIndicatorSettings,
    OsdpReaderSettings,
    OsdpScannerSettings,
    Parity,
    ScannerIndicatorSettings,
    ScannerSettings,
    SerialScannerSettings,
    TcpScannerSettings,
    UhppoteControllerSettings,
    UhppoteGateSettings,
    UhppoteScannerSettings,
)
from suishen.gateway.config.sections import (
    DisplaySettings,
    GatewaySection,
    HttpSettings,
    HubSettings,
    ListsSettings,
    LoggingSettings,
    LogLevel,
    PrivacySettings,
    SiteSection,
    VerifySettings,
)
from suishen.gateway.config.tree import (
    SETTINGS_INTRO,
    GatewayConfig,
    load_config,
    parse_config,
    settings_markdown,
)
from suishen.settings import (
    ConfigError,
    ConfigProblem,
    SettingError,
    iter_settings,
    load_tree,
    optional,
    setting,
)

__all__ = [
    "SETTINGS_INTRO",
    "ConfigError",
    "ConfigProblem",
    "DisplaySettings",
    "FramingSettings",
    "GateSettings",
    "GatewayConfig",
    "GatewaySection",
    "HttpSettings",
    "HubSettings",
    "IndicatorSettings",
    "LaneSettings",
    "ListsSettings",
    "LogLevel",
    "LoggingSettings",
    "ModbusGateSettings",
    "NoGateSettings",
    "OsdpBusSettings",
    "OsdpGateSettings",
    "OsdpIndicatorSettings",
    "OsdpReaderSettings",
    "OsdpScannerSettings",
    "Parity",
    "PrivacySettings",
    "ScannerIndicatorSettings",
    "ScannerSettings",
    "SerialScannerSettings",
    "SettingError",
    "SiteSection",
    "TcpScannerSettings",
    "UhppoteControllerSettings",
    "UhppoteGateSettings",
    "UhppoteScannerSettings",
    "VerifySettings",
    "iter_settings",
    "load_config",
    "load_tree",
    "optional",
    "parse_config",
    "read_secret",
    "setting",
    "settings_markdown",
]
