"""Kept for the runtime tests' imports: the bundle builder lives in tests/model_bundles.py (shared fixtures)."""

from model_bundles import CLASSES, make_bundle  # noqa: F401
