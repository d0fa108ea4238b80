"""Optional extras (DESIGN §2): a command that needs one says which to install.

The base install (`pip install suishen-gate`) carries codes, identity documents and the CLI;
device drivers, OSDP, the hub's embedded PostgreSQL and the web UI come as extras. Commands
import what an extra provides only inside their handler, after `require_extras` has checked
that it is there, so `suishen --help` and the base commands work without any extra.
"""

from __future__ import annotations

import importlib.util
from typing import Final

# The modules each extra installs (the first one of each is enough to tell).
EXTRA_MODULES: Final = {
    "devices": ("pymodbus", "uhppoted"),
    "osdp": ("osdp", "osdp_sys"),
    "hub": ("pgserver",),
    "web": ("aiohttp_jinja2", "jinja2", "aiohttp_sse", "argon2", "babel"),
}


class MissingExtraError(Exception):
    """A command needs an extra that is not installed; the CLI prints it and exits 2."""

    def __init__(self, command: str, extra: str, module: str) -> None:
        super().__init__(
            f"{command}: needs the '{extra}' extra (module {module!r} is not installed); "
            f"install it with: pip install 'suishen-gate[{extra}]'"
        )
        self.extra = extra
        self.module = module


def missing_module(extra: str) -> str | None:
    """The first module of `extra` that is not importable, or None when all are."""
    for module in EXTRA_MODULES[extra]:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def require_extras(command: str, *extras: str) -> None:
    """Raise MissingExtraError naming the first extra of `extras` that is not installed."""
    for extra in extras:
        module = missing_module(extra)
        if module is not None:
            raise MissingExtraError(command, extra, module)


def extra_providing(module: str) -> str | None:
    """The extra that installs top-level `module` (e.g. "pymodbus" -> "devices"), or None."""
    top = module.partition(".")[0]
    for extra, modules in EXTRA_MODULES.items():
        if top in modules:
            return extra
    return None
