"""Shared test helpers: the real Centrifugo launcher and the desktop (Xvfb/dunst) helpers."""
