"""Shared fixtures. With EDGEKIT_REQUIRE_ALL=1 (set by .ci/run) a skipped test counts as a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRE_ALL = os.environ.get("EDGEKIT_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped, but EDGEKIT_REQUIRE_ALL=1 forbids skips: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module-level importorskip skips a whole file at collection time; under REQUIRE_ALL that is a failure too."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped at collection, but EDGEKIT_REQUIRE_ALL=1 forbids skips: {reason}"


@pytest.fixture(scope="session")
def cwru_dir() -> Path:
    """The real CWRU files, from EDGEKIT_CWRU_DIR (the Makefile points it at ../shared/data)."""
    path = os.environ.get("EDGEKIT_CWRU_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip(f"CWRU files not found (EDGEKIT_CWRU_DIR={path!r}); point it at the CWRU .mat folder")
    return Path(path)


# Real bundles (a tiny trained model, a real export) shared by the runtime tests; built once per session.
@pytest.fixture(scope="session")
def bundle_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime-bundles")


@pytest.fixture(scope="session")
def cnn_bundle(bundle_root) -> Path:
    """cnn1d exported for rpi4: ONNX fp32, ONNX int8, full-int8 TFLite."""
    from model_bundles import make_bundle

    return make_bundle(bundle_root, "cnn1d", "rpi4")


@pytest.fixture(scope="session")
def cnn_bundle_opened(cnn_bundle):
    from edgekit.bundle import open_bundle

    return open_bundle(cnn_bundle, trust="hashes")


@pytest.fixture(scope="session")
def mlp_bundle(bundle_root) -> Path:
    """The feature MLP exported for x86-64-avx2 (ONNX only)."""
    from model_bundles import make_bundle

    return make_bundle(bundle_root, "mlp", "x86-64-avx2")


@pytest.fixture(scope="session")
def mlp_run(mlp_bundle, bundle_root) -> Path:
    return bundle_root / "run-mlp"
