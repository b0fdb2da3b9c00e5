"""Shared code the apps build on (no models, no app of its own)."""
