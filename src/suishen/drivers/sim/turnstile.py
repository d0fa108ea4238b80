"""Placeholder: this simulator lands in the devices change set."""

from typing import Any


def add_cli(sub: Any) -> None:
    del sub
