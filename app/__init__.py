"""Telex Start: a tray notifier for Telex. Importing this package must stay cheap."""

__version__ = "0.1.0"
