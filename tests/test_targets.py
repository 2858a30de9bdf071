"""Target profiles: every shipped board loads, malformed files fail precisely, user folders extend the set."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.errors import ConfigError
from edgekit.targets import ENV_VAR, get_profile, load_profile, load_profiles, shipped_targets_dir

REPO = Path(__file__).resolve().parents[1]
REQUIRED = {"rpi4", "jetson-orin-nano", "cortex-m4", "cortex-m7", "x86-64-avx2", "x86-64-vnni", "gpu-server"}
MINIMAL = """
name = "{name}"
description = "test board"
cpu = "Cortex-A53"
arch = "aarch64"
cores = 4
clock_mhz = 1200
formats = ["onnx_int8"]
[budget]
ram_kib = 1024
flash_kib = 2048
"""


def test_shipped_profiles_cover_the_required_boards():
    profiles = load_profiles()
    assert REQUIRED <= set(profiles)
    rpi4 = profiles["rpi4"]
    assert (rpi4.cpu, rpi4.arch, rpi4.cores) == ("Cortex-A72", "aarch64", 4)
    assert "neon" in rpi4.isa_features
    assert {"onnx_int8", "tflite_int8"} <= set(rpi4.formats)
    assert (rpi4.quantization.activation_type, rpi4.quantization.weight_type) == ("uint8", "int8")
    assert rpi4.emulation.mode == "qemu-user" and rpi4.emulation.qemu_arch == "aarch64"
    assert profiles["x86-64-avx2"].quantization.reduce_range is True
    assert profiles["x86-64-vnni"].quantization.reduce_range is False
    m4 = profiles["cortex-m4"]
    assert (m4.budget.ram_kib, m4.budget.flash_kib, m4.clock_mhz) == (192, 1024, 80)
    assert m4.emulation.machine == "mps2-an386"
    jetson = profiles["jetson-orin-nano"]
    assert jetson.gpu is not None and "tensorrt_int8" in jetson.formats
    assert jetson.quantization.symmetric_activations and jetson.quantization.activation_type == "int8"


def test_profile_is_frozen_and_round_trips_to_dict():
    profile = get_profile("rpi4")
    with pytest.raises(AttributeError):
        profile.cores = 8  # type: ignore[misc]
    data = profile.to_dict()
    assert data["budget"] == {"ram_kib": 262144, "flash_kib": 65536, "weights_in_ram": True}
    assert get_profile("cortex-m4").budget.weights_in_ram is False  # MCU weights execute from flash
    json.dumps(data)  # serializable for manifests


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + 'colour = "red"\n', "colour: unknown key"),
        (lambda t: t.replace("cores = 4\n", ""), "cores: missing required field"),
        (lambda t: t.replace("cores = 4", 'cores = "four"'), "cores: expected an integer, got 'four'"),
        (lambda t: t.replace("cores = 4", "cores = true"), "cores: expected an integer, got True"),
        (lambda t: t.replace("ram_kib = 1024", "ram_kib = 1.5"), "budget.ram_kib: expected an integer"),
        (lambda t: t.replace('arch = "aarch64"', 'arch = "sparc"'), "arch: 'sparc' is not one of"),
        (lambda t: t.replace('["onnx_int8"]', '["onnx_int4"]'), "formats: 'onnx_int4' is not one of"),
        (lambda t: t + "[quantization]\nsparkle = 1\n", "quantization.sparkle: unknown key"),
        (lambda t: t.replace("cores = 4", "cores = = 4"), "not valid TOML"),
        (lambda t: t.replace('name = "board"', 'name = "other"'), "must match the file name 'board'"),
    ],
)
def test_malformed_profile_names_file_field_and_reason(tmp_path, edit, message):
    path = _write(tmp_path, "board", edit(MINIMAL.format(name="board")))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_user_folder_adds_and_overrides_boards(tmp_path, monkeypatch):
    _write(tmp_path / "env", "my-board", MINIMAL.format(name="my-board"))
    _write(tmp_path / "flag", "rpi4", MINIMAL.format(name="rpi4").replace("cores = 4", "cores = 2"))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    profiles = load_profiles(tmp_path / "flag")
    assert "my-board" in profiles
    assert profiles["rpi4"].cores == 2 and profiles["rpi4"].source.endswith("flag/rpi4.toml")
    assert load_profiles()["rpi4"].cores == 4


def test_unknown_target_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown target 'rpi5'; known targets: cortex-m4, cortex-m7"):
        get_profile("rpi5")


def test_missing_targets_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_profiles(tmp_path / "nope")


def test_cli_list_and_show():
    runner = CliRunner()
    table = runner.invoke(cli, ["targets", "list"])
    assert table.exit_code == 0, table.output
    assert "rpi4" in table.output and "Cortex-A72" in table.output and "256.0 MiB" in table.output
    listed = json.loads(runner.invoke(cli, ["targets", "list", "--format", "json"]).output)
    assert REQUIRED <= {p["name"] for p in listed}
    shown = json.loads(runner.invoke(cli, ["targets", "show", "cortex-m4", "--format", "json"]).output)
    assert shown["budget"]["ram_kib"] == 192
    text = runner.invoke(cli, ["targets", "show", "cortex-m4"]).output
    assert "budget.ram_kib" in text and "192" in text


def test_cli_reports_a_bad_user_profile_without_traceback(tmp_path):
    _write(tmp_path, "bad", MINIMAL.format(name="bad").replace("cores = 4", "cores = -1"))
    result = CliRunner().invoke(cli, ["targets", "list", "--targets-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "bad.toml" in result.output
    assert isinstance(result.exception, SystemExit)


def test_wheel_ships_the_profiles(tmp_path):
    """An installed edgekit (not a checkout) finds the profiles: the wheel carries them inside the package."""
    build = pytest.importorskip("hatchling.builders.wheel")
    builder = build.WheelBuilder(str(REPO))
    wheel = next(iter(builder.build(directory=str(tmp_path), versions=["standard"])))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {p.name for p in (REPO / "targets").glob("*.toml")}
    assert {f"edgekit/_targets/{n}" for n in shipped} <= set(names)
    assert shipped_targets_dir().is_dir()
