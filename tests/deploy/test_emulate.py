"""edgekit emulate: the comparison and the checks without QEMU, then the real thing (a Debian arm64 userland built
with debootstrap, edgekit run under qemu-aarch64-static) against a host run, and over MQTT to a host broker.

The end-to-end tests use the real cache (``$EDGEKIT_CACHE_DIR/emulation`` or the user cache): a cold cache costs
4-6 minutes on 2 cores (userland 1.5 min, numba's first emulated compile 2 min), a warm one 15-25 s a run
(docs/emulation.md).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.deploy.emulate import compare_predictions, emulatable_targets
from edgekit.deploy.rootfs import EmulationError, find_qemu, userland_spec
from edgekit.errors import MissingDependencyError
from edgekit.targets import get_profile


def window(i, cls="normal", confidence=0.9, anomaly=2.0):
    return {"window": i, "class": cls, "confidence": confidence, "anomaly": anomaly}


# ---------------------------------------------------------------------------------------------- no QEMU needed


def test_userlands_unused_for_a_month_are_pruned_unless_in_use(tmp_path):
    import fcntl
    import os
    import time

    from edgekit.deploy.rootfs import LAST_USED, MARKER, prune_unused

    def userland(key, idle_days, built_days_ago=None):
        (tmp_path / key / "rootfs").mkdir(parents=True)
        (tmp_path / key / MARKER).write_text("{}")
        (tmp_path / key / LAST_USED).touch()
        for name, days in ((LAST_USED, idle_days), (MARKER, built_days_ago or idle_days)):
            then = time.time() - days * 86400
            os.utime(tmp_path / key / name, (then, then))

    userland("current", 90)  # the one being used now is never pruned, however old its mark
    userland("recent", 3, built_days_ago=200)  # built long ago, used last week: kept
    userland("old", 45)
    userland("old-but-running", 45)
    (tmp_path / "old.debootstrap.log").write_text("log")
    said = []
    with open(tmp_path / "old-but-running.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert prune_unused(tmp_path, keep="current", progress=said.append) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["current", "old-but-running", "recent"]
    assert not (tmp_path / "old.debootstrap.log").exists()
    assert said == ["removed the userland old, unused for over 30 days"]


def test_an_extras_own_marker_keeps_its_precedence():
    from edgekit.deploy.rootfs import with_extra_marker
    from edgekit.deploy.wheelhouse import device_requirements

    lines = [with_extra_marker("tomli>=2; python_version < '3.11' or platform_machine == 'armv7l'", "runtime"),
             with_extra_marker("numba>=0.59", "runtime"), "numpy>=1.24"]
    assert lines[0] == "tomli>=2; (python_version < '3.11' or platform_machine == 'armv7l') and extra == 'runtime'"
    names = lambda python, extra: [r.name for r in device_requirements(lines, python, "aarch64", extra)]  # noqa: E731
    assert names("3.10", "runtime") == ["tomli", "numba", "numpy"]
    assert names("3.11", "runtime") == ["numba", "numpy"]
    assert names("3.10", "train") == ["numpy"]  # the or-branch must not leak tomli into another extra


def test_identical_runs_agree():
    runs = [window(i, confidence=0.5 + i / 10) for i in range(4)]
    result = compare_predictions(runs, [dict(r) for r in runs])
    assert (result.compared, result.class_agreement, result.max_confidence_diff, result.passed) == (4, 1.0, 0.0, True)


def test_another_class_fails_with_the_count():
    host = [window(0), window(1)]
    emulated = [window(0), window(1, cls="imbalance")]
    result = compare_predictions(host, emulated)
    assert result.class_agreement == 0.5
    assert result.problems == ("1 of 2 windows have another class when emulated",)
    assert result.mismatches[0]["emulated_class"] == "imbalance"


def test_scores_beyond_the_tolerance_fail():
    # confidence 0.03 apart (limit 0.02); anomaly 12.0 vs 12.1 is within 2% of 12 and passes on its own.
    result = compare_predictions([window(0, confidence=0.90, anomaly=12.0)],
                                 [window(0, confidence=0.93, anomaly=12.1)])
    assert result.class_agreement == 1.0
    assert result.problems == ("1 windows have scores beyond the tolerance 0.02 (largest differences: confidence "
                               "0.03, anomaly 0.1)",)


def test_missing_windows_fail():
    result = compare_predictions([window(0), window(1)], [window(0)])
    assert result.problems == ("the host run gave 2 windows, the emulated run 1",)


def test_only_qemu_user_profiles_are_emulatable():
    assert "rpi4" in emulatable_targets()
    assert "cortex-m4" not in emulatable_targets() and "x86-64-avx2" not in emulatable_targets()


def test_rpi4_userland_spec_is_bookworm_arm64_with_host_pins():
    spec = userland_spec(get_profile("rpi4"))
    assert (spec.release, spec.debian_arch, spec.python) == ("bookworm", "arm64", "3.11")
    assert "python3.11" in spec.packages
    # LiteRT ships manylinux_2_27 only; the profile lists 2_17 and 2_28, so the tags must be expanded.
    assert "manylinux_2_27_aarch64" in spec.platforms
    for name in ("numpy", "click"):
        assert f"{name}=={importlib.metadata.version(name)}" in spec.requirements


def test_a_python_without_a_debian_release_is_a_clear_error():
    with pytest.raises(EmulationError, match=r"^target 'jetson-orin-nano' runs Python 3.10, which no Debian "
                                             r"release ships as its python3; emulation builds a Debian userland "
                                             r"and supports Python 3.9 \(bullseye\), 3.11 \(bookworm\), 3.13 "):
        userland_spec(get_profile("jetson-orin-nano"))


def test_missing_qemu_names_the_debian_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError) as info:
        find_qemu("aarch64")
    assert str(info.value) == ("qemu-aarch64-static is not installed; emulation needs it: apt-get install "
                               "qemu-user-static debootstrap")


@pytest.mark.parametrize("target, why", [
    ("cortex-m4", 'it is emulated as a whole machine (emulation.mode = "qemu-system"), which runs firmware, not '
                  "edgekit run"),
    ("x86-64-avx2", 'it has no emulation (emulation.mode = "none")'),
])
def test_a_target_that_cannot_be_emulated_is_a_clear_error(tmp_path, target, why):
    result = CliRunner().invoke(cli, ["emulate", str(tmp_path), "--target", target, "--source", "synth:normal"])
    assert result.exit_code == 1
    assert result.output == (f"Error: target {target!r} cannot be emulated with edgekit run: {why}; targets that "
                             f"can: {', '.join(emulatable_targets())}\n")


def test_stdin_cannot_be_emulated(tmp_path):
    result = CliRunner().invoke(cli, ["emulate", str(tmp_path), "--source", "stdin"])
    assert result.exit_code == 1
    assert result.output == ("Error: emulate runs the source twice (host and emulated), so it cannot read stdin; "
                             "save the samples to a file and use replay:FILE\n")


# ---------------------------------------------------------------------------------------------- under QEMU


@pytest.fixture(scope="module")
def emulation_tools():
    """Skip (a failure in CI, where EDGEKIT_REQUIRE_ALL=1) without QEMU user mode and debootstrap."""
    for tool in ("qemu-aarch64-static", "debootstrap", "dpkg-deb"):
        if not (shutil.which(tool) or Path("/usr/sbin", tool).exists()):
            pytest.skip(f"{tool} is not installed; the emulation tests need: apt-get install qemu-user-static "
                        "debootstrap")
    if importlib.util.find_spec("onnxruntime") is None:  # the host run, and the pins of the emulated wheels
        pytest.skip("onnxruntime is not installed: pip install 'edgekit[runtime]'")


def run_emulate(*args) -> dict:
    result = CliRunner().invoke(cli, ["emulate", *map(str, args), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_LONG_emulated_rpi4_matches_the_host_with_both_engines(emulation_tools, cnn_bundle):
    """The long one: 4-6 minutes on a cold cache (2 cores), about 1 minute warm."""
    first = run_emulate(cnn_bundle, "--source", "synth:normal:duration=2", "--engine", "onnxruntime")
    assert (first["target"], first["emulated_cpu"], first["artifact"]) == ("rpi4", "cortex-a72", "model_int8.onnx")
    assert first["windows"] == first["host_windows"] == first["emulated_windows"] > 20
    assert first["class_agreement"] == 1.0
    assert first["max_score_diff"]["confidence"] <= 0.02 and first["max_score_diff"]["anomaly"] <= 0.02
    assert first["passed"] is True
    marker = Path(first["cache"]["marker"])
    stamp = marker.stat().st_mtime_ns

    second = run_emulate(cnn_bundle, "--source", "synth:normal:duration=2", "--engine", "litert")
    assert second["artifact"] == "model_int8.tflite"
    assert second["class_agreement"] == 1.0
    assert second["max_score_diff"]["confidence"] <= 0.02 and second["max_score_diff"]["anomaly"] <= 0.02
    # The second run reused the first one's userland: same folder, marker untouched.
    assert second["cache"] == {**first["cache"], "reused": True}
    assert second["timings"]["userland"] == "cached"
    assert marker.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_emulated_runtime_publishes_to_a_broker_on_the_host(emulation_tools, cnn_bundle, tmp_path):
    # The broker helpers live with the runtime tests; tests/ folders are not packages, so add theirs to the path.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
    from broker import Mosquitto, Subscriber

    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, "edgekit/#").start()
    try:
        result = run_emulate(cnn_bundle, "--source", "synth:normal:duration=1", "--max-windows", "8",
                             "--mqtt", broker.url)
        assert (result["windows"], result["class_agreement"], result["device_id"]) == (8, 1.0, "emulated-rpi4")
        assert subscriber.wait_for(lambda s: any(t.split("/")[2] == "emulated-rpi4" for t, _, _ in s.messages))
    finally:
        subscriber.stop()
        broker.stop()
