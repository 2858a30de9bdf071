"""The exporter interface: one small module per backend, registered by the format it produces.

An exporter turns a trained run into one artifact for one target format (``onnx_int8``, ``tflite_int8``, ...).
The pipeline runs the exporter of every format the profile lists (plus the fp32 ONNX reference) and validates
each artifact against its reference before anything is bundled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, EdgekitError
from edgekit.targets import TargetProfile


class ExportError(EdgekitError):
    """An artifact could not be produced, or does not behave like its reference; the message has the numbers."""


class BudgetError(ExportError):
    """An artifact does not fit the board's flash or RAM budget; the message says by how much."""


@dataclass
class Artifact:
    """One exported file and what the device needs to run it."""

    file: str                      # relative to the bundle folder
    target_format: str             # one of edgekit.targets.FORMATS, e.g. "onnx_int8"
    format: str                    # file format: "onnx", "tflite", "tensorrt-plan", "script"
    precision: str                 # "fp32", "fp16", "int8"
    engine: str                    # runtime that loads it: "onnxruntime", "litert", "tensorrt"
    input_quantization: dict[str, Any] | None = None   # {"scale", "zero_point", "dtype"} for integer inputs
    output_quantization: dict[str, Any] | None = None
    built: bool = True             # False for what could not be built here (e.g. a TensorRT engine without a GPU)
    reference: str | None = None   # the artifact (or "torch") it is validated against
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportContext:
    """What every exporter may use: the run, the profile, and float32 model inputs for calibration and checks."""

    run: Any                         # edgekit.train.run.Run
    profile: TargetProfile
    out_dir: Path
    calibration_inputs: np.ndarray   # model inputs ([n, 1, window] or [n, features]) from the run's calibration set
    holdout_inputs: np.ndarray       # held-out model inputs, for validation
    holdout_labels: np.ndarray
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # already exported, by target format

    def path(self, name: str) -> Path:
        return self.out_dir / name


class Exporter(ABC):
    """Produces one target format, named by ``name``."""

    name: str = ""

    @abstractmethod
    def export(self, ctx: ExportContext) -> Artifact:
        """Write the artifact into ``ctx.out_dir`` and describe it."""


_REGISTRY: dict[str, type[Exporter]] = {}


def register(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make an exporter available under its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name")
    _REGISTRY[cls.name] = cls
    return cls


def get_exporter(name: str) -> Exporter:
    _load_builtin_exporters()
    if name not in _REGISTRY:
        raise ConfigError(f"no exporter for {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def registered() -> dict[str, type[Exporter]]:
    _load_builtin_exporters()
    return dict(_REGISTRY)


def _load_builtin_exporters() -> None:
    # Importing the modules runs their @register decorators; backends themselves are imported lazily inside.
    from edgekit.export import onnx_export, tensorrt_export, tflite_export  # noqa: F401

