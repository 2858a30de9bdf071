"""Target profiles: one TOML file per board, validated into a frozen ``TargetProfile``.

A new board is a new file, never a code change. Profiles are found in, by rising priority:

1. the profiles shipped with edgekit (``targets/`` in a checkout, ``edgekit/_targets`` in an installed wheel);
2. the folders in ``EDGEKIT_TARGETS`` (``os.pathsep``-separated);
3. a folder passed explicitly (``--targets-dir``).

A later folder's profile replaces an earlier one of the same name, so a user can tune a shipped board.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgekit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_VAR = "EDGEKIT_TARGETS"

# The artifact formats an exporter may produce; a profile asks for a subset.
FORMATS = ("onnx_fp32", "onnx_fp16", "onnx_int8", "tflite_int8", "tensorrt_fp16", "tensorrt_int8", "c_int8")
ARCHES = ("aarch64", "armv7l", "x86_64", "armv7e-m", "armv8-m")
EMULATION_MODES = ("none", "qemu-user", "qemu-system")
QUANT_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class Budget:
    """What the model may use on the board: RAM for activations and runtime, flash/storage for the artifact."""

    ram_kib: int
    flash_kib: int
    # Linux boards load the model file into RAM beside the activations; an MCU runs its weights from flash.
    weights_in_ram: bool = True


@dataclass(frozen=True)
class Quantization:
    """The int8 scheme the board's kernels run best; mirrors ONNX Runtime's static quantization options.

    ``reduce_range`` quantizes weights to 7 bits: x86 AVX2 without VNNI computes u8 x s8 products with
    ``vpmaddubsw``, which saturates int16 pair sums, and 7-bit weights avoid the overflow.
    """

    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False
    symmetric_activations: bool = False


@dataclass(frozen=True)
class Validation:
    """How close each artifact must stay to its reference on held-out windows (fractions, not percent)."""

    max_abs_error_fp32: float = 1e-4
    max_abs_error_fp16: float = 1e-2
    min_agreement_int8: float = 0.99
    max_accuracy_drop_int8: float = 0.005


@dataclass(frozen=True)
class Emulation:
    """How to run the board's code without the board: QEMU user mode (Linux boards) or system mode (MCUs)."""

    mode: str = "none"
    qemu_arch: str = ""
    machine: str = ""
    notes: str = ""


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str
    memory_mib: int


@dataclass(frozen=True)
class Platform:
    """What pip needs to build an offline wheelhouse for the board (Linux boards only)."""

    python: str = "3.11"
    wheel_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetProfile:
    """One board, as data."""

    name: str
    description: str
    cpu: str
    arch: str
    cores: int
    clock_mhz: int
    budget: Budget
    formats: tuple[str, ...]
    isa_features: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    quantization: Quantization = field(default_factory=Quantization)
    validation: Validation = field(default_factory=Validation)
    emulation: Emulation = field(default_factory=Emulation)
    gpu: Gpu | None = None
    platform: Platform | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_choice("arch", self.arch, ARCHES)
        for fmt in self.formats:
            _check_choice("formats", fmt, FORMATS)
        _check_choice("quantization.activation_type", self.quantization.activation_type, QUANT_TYPES)
        _check_choice("quantization.weight_type", self.quantization.weight_type, QUANT_TYPES)
        _check_choice("emulation.mode", self.emulation.mode, EMULATION_MODES)
        if self.emulation.mode != "none" and not self.emulation.qemu_arch:
            raise ValueError("emulation.qemu_arch: required when emulation.mode is not 'none'")
        if self.cores < 1 or self.clock_mhz < 1:
            raise ValueError("cores and clock_mhz: must be positive")
        if self.budget.ram_kib < 1 or self.budget.flash_kib < 1:
            raise ValueError("budget: ram_kib and flash_kib must be positive")
        if not self.formats:
            raise ValueError("formats: list at least one artifact format")
        if any(f.startswith("tensorrt") for f in self.formats) and self.gpu is None:
            raise ValueError("gpu: a profile with TensorRT formats must describe its [gpu]")

    @property
    def ram_bytes(self) -> int:
        return self.budget.ram_kib * 1024

    @property
    def flash_bytes(self) -> int:
        return self.budget.flash_kib * 1024

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data


def _check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")


def _describe(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert TOML arrays/tables to tuples/dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {type(value).__name__}")
        return _build(tp, value, where + ".")
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    # bool is an int in Python; a TOML `true` where a number belongs is a mistake, not 1.
    ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise ValueError(f"{where}: expected {_describe(tp)}, got {value!r}")
    return value


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]}: unknown key (known keys: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{prefix}{name}: missing required field")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{prefix}{exc}") from None


def load_profile(path: str | Path) -> TargetProfile:
    """Load and validate one profile file; errors name the file, the field and the reason."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read target profile: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; a target profile is TOML text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        profile = _build(TargetProfile, data)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if profile.name != path.stem:
        raise ConfigError(f"{path}: name: {profile.name!r} must match the file name {path.stem!r}")
    return dataclasses.replace(profile, source=str(path))


def shipped_targets_dir() -> Path:
    """Where the profiles that come with edgekit live, in a wheel or in a checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "_targets"
    return installed if installed.is_dir() else package.parent / "targets"


def search_path(targets_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for profiles, lowest priority first."""
    dirs = [shipped_targets_dir()]
    dirs += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if targets_dir:
        dirs.append(Path(targets_dir))
    for folder in dirs[1:]:
        if not folder.is_dir():
            raise ConfigError(f"targets folder {folder} does not exist (from --targets-dir or ${ENV_VAR})")
    return dirs


def load_profiles(targets_dir: str | Path | None = None) -> dict[str, TargetProfile]:
    """Every known profile by name; a malformed file anywhere is an error, not a silently missing board."""
    profiles: dict[str, TargetProfile] = {}
    for folder in search_path(targets_dir):
        for path in sorted(folder.glob("*.toml")):
            profile = load_profile(path)
            profiles[profile.name] = profile
    return dict(sorted(profiles.items()))


def get_profile(name: str, targets_dir: str | Path | None = None) -> TargetProfile:
    """The profile called ``name``; an unknown name lists the known ones."""
    profiles = load_profiles(targets_dir)
    if name not in profiles:
        raise ConfigError(f"unknown target {name!r}; known targets: {', '.join(profiles)}")
    return profiles[name]
