"""edgekit flash against a real OpenSSH server on 127.0.0.1 (this machine plays the device), real wheels from the
package index (cached after the first run), and the real device scripts in firmware_examples/rpi4.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd import Sshd, free_port, make_key

from edgekit.bundle_writer import write_bundle
from edgekit.cli.main import cli
from edgekit.deploy.device import DeviceError
from edgekit.deploy.flash import FlashError, firmware_dir, plan_flash, run_flash
from edgekit.deploy.flash_lock import FlashLockedError
from edgekit.deploy.ssh import SshError, parse_target
from edgekit.deploy.wheelhouse import WheelhouseError, build_edgekit_wheel, build_wheelhouse, runtime_requirements
from edgekit.targets import get_profile

X86 = "x86-64-avx2"
# Installing a unit into this machine's systemd would change the test host itself; only flash where there is none.
HOST_RUNS_SYSTEMD = Path("/run/systemd/system").is_dir()


def fake_bundle(root: Path, target: str, python: str | None = None) -> Path:
    """A tiny bundle for ``target`` (optionally claiming another Python); for flashes that must fail early."""
    profile = get_profile(target).to_dict()
    if python is not None:
        profile["platform"]["python"] = python
    artifacts = [{"file": "model.onnx", "format": "onnx", "precision": "fp32"}]
    return write_bundle(root / f"bundle-{target}", {"model.onnx": b"not a real model"},
                        {"artifacts": artifacts, "target": profile})


def releases(path: Path) -> list[str]:
    return sorted(os.listdir(path / "releases"))


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def x86_wheelhouse():
    """The real wheelhouse for the x86-64-avx2 profile, in the user cache: downloaded once, then reused offline."""
    platform = get_profile(X86).platform
    return build_wheelhouse(platform.python, "x86_64", platform.wheel_tags)


@pytest.fixture(scope="module")
def device(sshd, mlp_bundle, x86_wheelhouse, tmp_path_factory):
    """A first real flash of the x86 MLP bundle to this machine: (device folder, plan, result)."""
    python = get_profile(X86).platform.python
    if sshd.ssh(f"python{python} -c 'import venv, ensurepip'").returncode != 0:
        pytest.skip(f"this machine (the test device) has no python{python} with venv; the x86-64-avx2 profile's "
                    f"wheelhouse is for Python {python} (apt-get install python{python}-venv)")
    path = tmp_path_factory.mktemp("device") / "edgekit"
    plan = plan_flash(mlp_bundle, sshd.url(path), service=not HOST_RUNS_SYSTEMD, **sshd.flash_options())
    return path, plan, run_flash(plan, wheelhouse=x86_wheelhouse)


def test_flash_installs_verifies_and_runs(device, sshd, mlp_bundle):
    path, plan, result = device
    files = len(json.loads((mlp_bundle / "manifest.json").read_text())["files"])
    assert (result.previous, result.verified_files, result.copy_tool) == (None, files, "rsync")
    assert result.service == ("skipped: the device does not run systemd" if not HOST_RUNS_SYSTEMD
                              else "skipped (--no-service)")
    assert os.readlink(path / "current") == f"releases/{plan.release}"
    assert releases(path) == [plan.release]
    assert (path / "current" / ".installed").is_file()

    # The device's own edgekit, from the offline install, runs the bundle end to end.
    run = sshd.ssh(f"cd {path} && current/venv/bin/edgekit run current/bundle "
                   "--source synth:normal:duration=1 --max-windows 3")
    assert run.returncode == 0, run.stderr
    windows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('{"window"')]
    assert len(windows) == 3
    # What edgekit.service starts: start.sh with the settings systemd would read from the environment file.
    service = sshd.ssh(f"cd {path} && EDGEKIT_SOURCE=synth:normal:duration=1 EDGEKIT_RUN_ARGS='--max-windows 3' "
                       f"STATE_DIRECTORY={path}/state sh current/scripts/start.sh")
    assert service.returncode == 0, service.stderr
    assert any('"report"' in line for line in service.stdout.splitlines())
    version = sshd.ssh(f"{path}/current/venv/bin/python -c 'import sys, edgekit; "
                       "print(sys.version_info[0], sys.version_info[1], edgekit.__version__)'")
    assert version.stdout.split() == [*get_profile(X86).platform.python.split("."), "0.1.0"]


def test_second_flash_switches_and_a_failed_one_keeps_current(device, sshd, mlp_bundle, x86_wheelhouse):
    path, first, _ = device
    assert not (path / ".flash-lock").exists()  # the first flash let go of its lock
    # A lock left by a flash that died three hours ago is taken over, and said so.
    (path / ".flash-lock").mkdir()
    (path / ".flash-lock" / "owner").write_text("laptop pid 4242 since 2026-11-26T06:00:00Z\n")
    os.utime(path / ".flash-lock", (time.time() - 3 * 3600, time.time() - 3 * 3600))
    # Through the command line this time; the wheelhouse comes from the cache the first flash filled.
    args = ["flash", str(mlp_bundle), "--to", sshd.url(path), "--identity", str(sshd.client_key),
            "--known-hosts", str(sshd.known_hosts), "--no-service", "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout)
    assert (second["previous"], second["copy_tool"], second["removed"], second["wheelhouse_cached"]) == (
        first.release, "rsync", [], True)
    assert os.readlink(path / "current") == f"releases/{second['release']}"
    assert releases(path) == sorted([first.release, second["release"]])
    assert "[7/7] switching" in result.stderr
    assert "took over a lock left by a flash that did not finish (laptop pid 4242 since 2026-11-26T06:00:00Z)" in (
        second["notes"])
    assert not (path / ".flash-lock").exists()

    # A wheelhouse without numba, copied with scp this time: the offline install fails on the device.
    broken = dataclasses.replace(x86_wheelhouse, dependencies=tuple(
        w for w in x86_wheelhouse.dependencies if not w.name.startswith("numba-")))
    third = plan_flash(mlp_bundle, sshd.url(path), service=False, **sshd.flash_options())
    with pytest.raises(FlashError) as failure:
        run_flash(third, wheelhouse=broken, prefer_rsync=False)
    assert re.fullmatch(
        r"installing edgekit\[runtime\] from the wheelhouse on 127\.0\.0\.1 failed: no wheel for numba>=[\d.]+ fits "
        r"the device \(a wheel whose manylinux tag needs a newer glibc than the device has does not; drop such tags "
        r"from the profile's platform\.wheel_tags\); the half-made release was removed and 127\.0\.0\.1 keeps its "
        rf"previous release {second['release']}", str(failure.value)), str(failure.value)
    assert os.readlink(path / "current") == f"releases/{second['release']}"
    assert releases(path) == sorted([first.release, second["release"]])
    assert not (path / ".flash-lock").exists()  # released on failure too


def test_a_flash_while_another_runs_is_refused_and_touches_nothing(device, sshd, mlp_bundle, x86_wheelhouse):
    path, _, _ = device
    before = (os.readlink(path / "current"), releases(path))
    (path / ".flash-lock").mkdir()
    (path / ".flash-lock" / "owner").write_text("ci-runner pid 77 since 2026-11-26T20:30:00Z\n")
    try:
        plan = plan_flash(mlp_bundle, sshd.url(path), service=False, **sshd.flash_options())
        with pytest.raises(FlashLockedError) as failure:
            run_flash(plan, wheelhouse=x86_wheelhouse)
        assert str(failure.value) == (
            f"another flash to 127.0.0.1:{path} is running (ci-runner pid 77 since 2026-11-26T20:30:00Z); wait for "
            f"it to finish, or, if none is running, remove {path}/.flash-lock on the device (it is taken over by "
            "itself after 120 minutes)")
        assert (os.readlink(path / "current"), releases(path)) == before
        assert (path / ".flash-lock" / "owner").read_text().startswith("ci-runner")  # not ours to remove
    finally:
        shutil.rmtree(path / ".flash-lock")


def test_wrong_architecture_is_refused_before_copying(sshd, tmp_path):
    bundle = fake_bundle(tmp_path, "rpi4")
    plan = plan_flash(bundle, sshd.url(tmp_path / "device"), **sshd.flash_options())
    with pytest.raises(DeviceError) as failure:
        run_flash(plan)
    assert str(failure.value) == (
        "wrong architecture: 127.0.0.1 is x86_64 but the bundle was exported for rpi4 (aarch64); export the model "
        "for a target whose arch is x86_64 (see: edgekit targets list) or flash it to an aarch64 device. "
        "Nothing was copied.")
    assert not (tmp_path / "device").exists()


def test_missing_python_version_is_refused(sshd, tmp_path):
    plan = plan_flash(fake_bundle(tmp_path, X86, python="3.4"), sshd.url(tmp_path / "device"),
                      **sshd.flash_options())
    with pytest.raises(DeviceError) as failure:
        run_flash(plan)
    assert re.fullmatch(r"127\.0\.0\.1 has no Python 3\.4 \(.+ is 3\.\d+\); the wheelhouse for x86-64-avx2 is built "
                        r"for Python 3\.4: install python3\.4 on the device or export for a profile whose "
                        r"platform\.python matches it\. Nothing was copied\.", str(failure.value)), str(failure.value)
    assert not (tmp_path / "device").exists()


def test_disk_full_is_refused_before_copying(sshd, tmp_path, x86_wheelhouse):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 2 MiB tmpfs to fill up ({mounted.stderr.strip()}); needs root with CAP_SYS_ADMIN")
    try:
        plan = plan_flash(fake_bundle(tmp_path, X86), sshd.url(small), **sshd.flash_options())
        with pytest.raises(DeviceError) as failure:
            run_flash(plan, wheelhouse=x86_wheelhouse)
        assert re.fullmatch(
            rf"disk full: 127\.0\.0\.1:{small} has 2\.0 MiB free but this flash needs about \d+\.\d MiB \(bundle "
            r"0\.0 MiB, wheelhouse \d+\.\d MiB, installed packages about 2x the wheelhouse, 16\.0 MiB margin\); "
            r"free some space on the device or choose another path in --to\. Nothing was copied\.",
            str(failure.value)), str(failure.value)
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_unreachable_device_is_a_one_line_cli_error(tmp_path):
    port = free_port()  # nothing listens there
    result = CliRunner().invoke(cli, ["flash", str(fake_bundle(tmp_path, X86)), "--to",
                                      f"ssh://root@127.0.0.1:{port}/tmp/edgekit"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: cannot reach 127.0.0.1:{port} (Connection refused); check the address, that the device is on and "
        "that its SSH server runs")
    assert "Traceback" not in result.output and result.stdout == ""


def test_refused_key_is_a_clear_error(sshd, tmp_path):
    stranger = make_key(tmp_path / "stranger")  # not in the server's authorized_keys
    plan = plan_flash(fake_bundle(tmp_path, X86), sshd.url(tmp_path / "device"), identity=str(stranger),
                      known_hosts=str(sshd.known_hosts))
    with pytest.raises(SshError) as failure:
        run_flash(plan)
    assert str(failure.value) == (
        f"SSH authentication to {sshd.user}@127.0.0.1 refused; check --identity {stranger}: its public key must be in "
        f"~/.ssh/authorized_keys of {sshd.user} on the device")


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path):
    bundle, device, port = fake_bundle(tmp_path, "rpi4"), tmp_path / "device", free_port()
    args = ["flash", str(bundle), "--to", f"ssh://pi@127.0.0.1:{port}{device}", "--dry-run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (f"flash plan for {bundle} (rpi4) to pi@127.0.0.1:{port} "
                        "(dry run: nothing is built, copied or changed)")
    assert [line.split(".")[0] for line in lines[1:8]] == [f"  {n}" for n in range(1, 8)]
    assert "architecture aarch64, Python 3.11 with venv" in lines[1]
    assert lines[8] == f"A failure before step 7 removes the new release; {device}/current stays as it is."
    plan = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).stdout)
    assert (plan["dry_run"], plan["arch"], len(plan["steps"])) == (True, "aarch64", 7)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", plan["release"])
    assert not device.exists()


@pytest.mark.parametrize("to, message", [
    ("http://pi@host/x", "'http://pi@host/x' is not an SSH target; use ssh://USER@HOST[:PORT][/PATH], e.g. "
                         "ssh://pi@raspberrypi.local/opt/edgekit"),
    ("ssh://pi@host:99999", "'ssh://pi@host:99999' has an invalid port; use ssh://USER@HOST[:PORT][/PATH], e.g. "
                            "ssh://pi@raspberrypi.local/opt/edgekit"),
    ("ssh://pi:secret@host", "'ssh://pi:secret@host' holds a password; flash logs in with a key only: drop "
                             "':PASSWORD' and pass --identity KEY"),
    ("ssh://pi@host/opt/../etc", "'/opt/../etc' is not a usable device folder; use letters, digits and . _ - + / "
                                 "without '..'"),
])
def test_bad_addresses_are_one_line_errors(tmp_path, to, message):
    result = CliRunner().invoke(cli, ["flash", str(fake_bundle(tmp_path, "rpi4")), "--to", to])
    assert (result.exit_code, result.output) == (1, f"Error: {message}\n")


def test_bundles_without_a_platform_and_missing_keys_are_refused(tmp_path):
    mcu = CliRunner().invoke(cli, ["flash", str(fake_bundle(tmp_path, "cortex-m4")), "--to", "ssh://pi@host"])
    assert (mcu.exit_code, mcu.output) == (1, (
        "Error: the bundle's target cortex-m4 (armv7e-m) has no [platform] with python and wheel_tags; flash is for "
        "Linux boards that run Python (microcontroller bundles are built into firmware)\n"))
    key = tmp_path / "no-such-key"
    missing = CliRunner().invoke(cli, ["flash", str(fake_bundle(tmp_path, "rpi4")), "--to", "ssh://pi@host",
                                       "--identity", str(key)])
    assert (missing.exit_code, missing.output) == (1, (
        f"Error: identity file {key} does not exist; pass the private key whose public half is in the device's "
        "~/.ssh/authorized_keys\n"))


def test_address_parsing():
    assert parse_target("ssh://pi@host/~/apps/edgekit").path == "apps/edgekit"
    assert parse_target("ssh://host/").path == "edgekit"
    target = parse_target("ssh://admin@[fe80::1]:2200/opt/edgekit/")
    assert (target.host, target.port, target.path, target.destination) == (
        "fe80::1", 2200, "/opt/edgekit", "admin@[fe80::1]")


def test_update_script_switches_and_keeps_the_newest_releases(tmp_path):
    """update.sh alone, on a local folder: the atomic switch and the pruning (oldest first, half-made ones too)."""
    prefix = tmp_path / "edgekit"
    names = [f"2026010{i}T000000Z-0000000{i}" for i in range(1, 6)]
    for name in names:
        (prefix / "releases" / name / "venv" / "bin").mkdir(parents=True)
        (prefix / "releases" / name / "venv" / "bin" / "python").symlink_to(sys.executable)
        (prefix / "releases" / name / ".installed").touch()
    (prefix / "releases" / names[2] / ".installed").unlink()  # a flash that lost its connection
    (prefix / "current").symlink_to(f"releases/{names[3]}")
    result = subprocess.run(["sh", str(firmware_dir() / "update.sh"), str(prefix), names[4], "3"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"previous=releases/{names[3]}", f"current=releases/{names[4]}",
                                          f"removed={names[2]}", f"removed={names[0]}"]
    assert os.readlink(prefix / "current") == f"releases/{names[4]}"
    assert releases(prefix) == [names[1], names[3], names[4]]

    refused = subprocess.run(["sh", str(firmware_dir() / "update.sh"), str(prefix), names[2], "3"],
                             capture_output=True, text=True)
    assert (refused.returncode, refused.stderr) == (20, f"releases/{names[2]} is not a finished install\n")


def test_runtime_requirements_are_evaluated_for_the_device_python(tmp_path):
    wheel = build_edgekit_wheel(tmp_path)  # only edgekit's own wheel: no dependency download needed
    on_310 = runtime_requirements(wheel, "3.10", "aarch64")
    on_311 = runtime_requirements(wheel, "3.11", "aarch64")
    assert set(on_310) - set(on_311) == {"tomli>=2"}  # the host's own Python does not decide
    assert {"numba>=0.59", "onnxruntime>=1.17", "paho-mqtt>=2.0"} <= set(on_311)
    assert not any(r.startswith(("torch", "edgekit")) for r in on_311)


def test_a_platform_without_wheels_is_a_clear_error(tmp_path):
    with pytest.raises(WheelhouseError) as failure:
        build_wheelhouse("3.11", "riscv64", ["manylinux_2_17_riscv64"], cache_dir=tmp_path)
    assert re.fullmatch(
        r"\S+ has no wheel for Python 3\.11 on riscv64 \(platform tags manylinux_2_17_riscv64, manylinux2014_riscv64\); "
        r"the device installs "
        r"offline and cannot compile, so pin a release that ships such a wheel or add the tag the wheel needs to the "
        r"profile's platform\.wheel_tags", str(failure.value)), str(failure.value)


def test_jetson_engine_build_script_runs_trtexec_outside_the_bundle(tmp_path):
    """build_engine.sh with a stand-in trtexec (no TensorRT here): its command lines, and the bundle stays valid."""
    from edgekit.bundle import open_bundle

    artifacts = [
        {"file": "model_fp32.onnx", "format": "onnx", "precision": "fp32", "target_format": "onnx_fp32",
         "extra": {"dynamic_batch_file": "model_dynamic.onnx"}},
        {"file": "model_int8.onnx", "format": "onnx", "precision": "int8", "target_format": "tensorrt_int8",
         "extra": {"onnx": "model_int8.onnx"}},
        {"file": "model_dynamic.onnx", "format": "onnx", "precision": "fp16", "target_format": "tensorrt_fp16",
         "extra": {"onnx": "model_dynamic.onnx"}},
    ]
    bundle = write_bundle(tmp_path / "bundle", {a["file"]: b"onnx" for a in artifacts},
                          {"artifacts": artifacts, "model": {"input": {"shape": [1, 28]}}})
    stub = tmp_path / "trtexec"
    stub.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\n'
                    'for a in "$@"; do case $a in --saveEngine=*) echo plan > "${a#--saveEngine=}";; esac; done\n')
    stub.chmod(0o755)
    script = Path(firmware_dir()).parent / "jetson" / "build_engine.sh"
    for precision in ("int8", "fp16"):
        done = subprocess.run(["sh", str(script), str(bundle), precision], capture_output=True, text=True,
                              env={**os.environ, "TRTEXEC": str(stub)})
        assert done.returncode == 0, done.stderr
    engines = tmp_path / "engines"
    assert (tmp_path / "calls").read_text().splitlines() == [
        f"--onnx={bundle}/model_int8.onnx --int8 --fp16 --memPoolSize=workspace:1024 "
        f"--timingCacheFile={engines}/timing.cache --saveEngine={engines}/model_int8.plan",
        f"--onnx={bundle}/model_dynamic.onnx --fp16 --minShapes=input:1x28 --optShapes=input:8x28 "
        f"--maxShapes=input:64x28 --memPoolSize=workspace:1024 --timingCacheFile={engines}/timing.cache "
        f"--saveEngine={engines}/model_fp16.plan"]
    assert sorted(os.listdir(engines)) == ["model_fp16.plan", "model_int8.plan"]
    open_bundle(bundle, trust="hashes").close()  # nothing was added to the bundle folder


def test_systemd_unit_passes_systemd_analyze(tmp_path):
    """The unit as install-service.sh renders it, checked offline by systemd's own parser (no systemd needed)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd); it checks edgekit.service")
    prefix = tmp_path / "edgekit"
    (prefix / "current" / "scripts").mkdir(parents=True)
    shutil.copy(firmware_dir() / "start.sh", prefix / "current" / "scripts" / "start.sh")
    text = (firmware_dir() / "edgekit.service").read_text()
    unit = tmp_path / "edgekit.service"
    unit.write_text(text.replace("@PREFIX@", str(prefix)).replace("@USER@", "root"))
    checked = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stderr
