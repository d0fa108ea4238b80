"""Suishen Gate: verify personal QR codes at the door, decide, record, sync."""

__version__ = "0.1.0"
