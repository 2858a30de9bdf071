"""Inference engines: one class per library, each taking float32 model inputs and returning float32 logits.

Integer models (full-int8 TFLite) quantize the input with the artifact's scale/zero point and dequantize the
output, so callers always see the float interface of the model they trained. Export validation runs artifacts
through these same classes, so what is checked at export is what runs on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError, require_module


class EngineError(EdgekitError):
    """An artifact could not be loaded or run by its engine."""


class Engine(ABC):
    """Loads one artifact file and runs batches through it."""

    name: str = ""

    def __init__(self, path: str | Path, artifact: dict[str, Any] | None = None, threads: int = 1):
        self.path = Path(path)
        self.artifact = artifact or {}
        self.threads = threads
        if not self.path.is_file():
            raise EngineError(f"{self.path}: artifact file not found")
        self._load()

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 inputs [n, ...] -> float32 logits [n, classes]."""

    @property
    @abstractmethod
    def input_spec(self) -> dict[str, Any]:
        """Shape (None for a dynamic dimension) and dtype the artifact expects."""


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def _load(self) -> None:
        ort = require_module("onnxruntime", "runtime")
        options = ort.SessionOptions()
        # Single-threaded by default: predictable latency on a shared device, and what the reports measure.
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for invalid models
            raise EngineError(f"{self.path.name}: onnxruntime cannot load it ({exc})") from exc
        self._input = self._session.get_inputs()[0]
        self._static_batch = isinstance(self._input.shape[0], int) and self._input.shape[0] > 0
        self._dtype = np.float16 if "float16" in self._input.type else np.float32

    @property
    def input_spec(self) -> dict[str, Any]:
        shape = [d if isinstance(d, int) else None for d in self._input.shape]
        return {"shape": shape, "dtype": np.dtype(self._dtype).name}

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=self._dtype)
        if self._static_batch and len(batch) != self._input.shape[0]:
            outputs = [self._session.run(None, {self._input.name: batch[i:i + 1]})[0] for i in range(len(batch))]
            return np.concatenate(outputs).astype(np.float32)
        return self._session.run(None, {self._input.name: batch})[0].astype(np.float32)


class LiteRtEngine(Engine):
    """TFLite models through LiteRT (``ai-edge-litert``), or ``tflite-runtime`` where that is what is installed."""

    name = "litert"

    def _load(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            try:
                from tflite_runtime.interpreter import Interpreter  # needs numpy < 2; some devices ship it
            except ImportError:
                require_module("ai_edge_litert", "runtime")
                raise
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"{self.path.name}: LiteRT cannot load it ({exc})") from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    @property
    def input_spec(self) -> dict[str, Any]:
        return {"shape": [int(d) for d in self._input["shape"]], "dtype": np.dtype(self._input["dtype"]).name}

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return x.astype(np.float32)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._output["dtype"] == np.float32:
            return y.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        # TFLite graphs here have a static batch of 1; run window by window like the device does.
        outputs = []
        for row in np.asarray(batch, dtype=np.float32):
            self._interpreter.set_tensor(self._input["index"], self._quantize(row[None]))
            self._interpreter.invoke()
            outputs.append(self._dequantize(self._interpreter.get_tensor(self._output["index"])))
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


ENGINES: dict[str, type[Engine]] = {OnnxRuntimeEngine.name: OnnxRuntimeEngine, LiteRtEngine.name: LiteRtEngine}


def open_engine(path: str | Path, engine: str, artifact: dict[str, Any] | None = None, threads: int = 1) -> Engine:
    if engine not in ENGINES:
        raise EngineError(f"no engine {engine!r} on this machine; known: {', '.join(ENGINES)}")
    return ENGINES[engine](path, artifact, threads)
