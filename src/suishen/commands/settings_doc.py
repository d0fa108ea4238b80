"""`suishen gateway settings` and `suishen hub settings`: print a config tree's settings as
Markdown (the same text as deploy/config/SETTINGS.md and HUB_SETTINGS.md), one way for both."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any


def add_settings_command(commands: Any, *, config_module: str, what: str) -> None:
    """Add `settings` to a command group; ``config_module`` (imported when the command runs)
    provides ``settings_markdown()``."""

    def run(args: argparse.Namespace) -> int:
        del args
        sys.stdout.write(importlib.import_module(config_module).settings_markdown())
        return 0

    parser = commands.add_parser(
        "settings", help=f"print every {what} setting with its type, default and help (Markdown)"
    )
    parser.set_defaults(handler=run)
