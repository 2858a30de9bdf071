"""Where samples come from: a replayed file, the synthetic generator, stdin, or a sensor driver.

A ``Source`` yields ``Chunk``s: 1-D float samples at a stated sample rate, in order. The runtime windows them
itself, so a source may deliver any chunk size. A real sensor driver subclasses ``Source`` and is named on the
command line as ``driver:package.module:ClassName[:key=value,...]`` (the key/values go to its constructor as
strings).

Source strings (``edgekit run --source``):

- ``replay:FILE`` -- a ``.npy``, ``.csv``/``.txt``, ``.wav`` or CWRU ``.mat`` file, or an edgekit dataset folder
  (all its recordings, one after the other; ``replay:DIR:ID`` for one). WAV, .mat and datasets carry their rate;
  for ``.npy``/``.csv`` give ``--sample-rate`` or the model's rate is assumed.
- ``synth:SCENARIO[:key=value,...]`` -- a drift or data-quality scenario from ``edgekit.data.scenarios``
  (keys: seed, duration, change_at, preset), or ``synth:CLASS`` for a stationary machine in that state.
- ``stdin`` / ``stdin:csv`` -- raw little-endian float32 samples (default) or one number per line.
"""

from __future__ import annotations

import importlib
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from edgekit.errors import ConfigError, DataError

DEFAULT_CHUNK = 4096


@dataclass(frozen=True)
class Chunk:
    """Consecutive samples of one channel; ``sample_rate`` in Hz. ``window=True`` marks a driver that delivers
    exactly one analysis window per chunk (then a chunk of the wrong length is flagged, not re-windowed)."""

    samples: np.ndarray
    sample_rate: float
    window: bool = False


class Source(ABC):
    """A stream of samples. ``finite`` sources end (the run exits 0 once everything is reported)."""

    finite: bool = True
    description: str = ""

    @abstractmethod
    def chunks(self) -> Iterator[Chunk]:
        """Yield chunks in stream order until the source ends (or forever, for a live sensor)."""

    def close(self) -> None:
        """Release the device or file; called once when the run stops."""


class ArraySource(Source):
    """An in-memory signal, cut into chunks; optionally paced at its sample rate like a live sensor."""

    def __init__(self, signal: np.ndarray, sample_rate: float, *, chunk: int = DEFAULT_CHUNK,
                 realtime: bool = False, description: str = "array") -> None:
        signal = np.asarray(signal)
        if signal.ndim != 1 or signal.dtype.kind not in "fiu":
            raise DataError(f"a source signal must be 1-D numbers, got shape {signal.shape} ({signal.dtype})")
        if not sample_rate > 0:
            raise ConfigError(f"sample rate must be positive, got {sample_rate}")
        self.signal = signal.astype(np.float32, copy=False)
        self.sample_rate = float(sample_rate)
        self.chunk = int(chunk)
        self.realtime = realtime
        self.description = description

    def chunks(self) -> Iterator[Chunk]:
        start = time.monotonic()
        for begin in range(0, len(self.signal), self.chunk):
            if self.realtime:
                # Pace by the stream's own clock: chunk k is released when its last sample would have been sampled.
                due = start + min(begin + self.chunk, len(self.signal)) / self.sample_rate
                time.sleep(max(0.0, due - time.monotonic()))
            yield Chunk(self.signal[begin:begin + self.chunk], self.sample_rate)


class StdinSource(Source):
    """Samples piped in: raw little-endian float32 (``f32``) or text with one number per line (``csv``)."""

    finite = True  # ends at end of file; a pipe from a live sensor simply never ends

    def __init__(self, sample_rate: float, fmt: str = "f32", stream: BinaryIO | None = None,
                 chunk: int = DEFAULT_CHUNK) -> None:
        if fmt not in ("f32", "csv"):
            raise ConfigError(f"stdin format must be f32 or csv, got {fmt!r}")
        self.sample_rate = float(sample_rate)
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.chunk = chunk
        self.description = f"stdin ({fmt})"

    def chunks(self) -> Iterator[Chunk]:
        if self.fmt == "f32":
            leftover = b""
            while True:
                data = self.stream.read(self.chunk * 4)
                if not data:
                    break
                data = leftover + data
                usable = len(data) - len(data) % 4  # a sample split across two reads waits for its other bytes
                leftover = data[usable:]
                yield Chunk(np.frombuffer(data[:usable], dtype="<f4").astype(np.float32), self.sample_rate)
            return
        values: list[float] = []
        for line in self.stream:
            text = line.decode("utf-8", "replace").strip() if isinstance(line, bytes) else line.strip()
            if not text:
                continue
            try:
                values.append(float(text.split(",")[0]))
            except ValueError:
                values.append(float("nan"))  # a garbled line is a bad sample: flagged downstream, never a crash
            if len(values) >= self.chunk:
                yield Chunk(np.array(values, dtype=np.float32), self.sample_rate)
                values = []
        if values:
            yield Chunk(np.array(values, dtype=np.float32), self.sample_rate)


def _replay(path_and_id: str, sample_rate: float | None, realtime: bool) -> Source:
    text, _, recording_id = path_and_id.partition(":") if not Path(path_and_id).exists() else (path_and_id, "", "")
    path = Path(text)
    if not path.exists():
        raise DataError(f"replay source {path} does not exist")
    if path.is_dir():
        from edgekit.data.store import load_dataset

        dataset = load_dataset(path)
        recordings = [dataset.recording(recording_id)] if recording_id else list(dataset)
        signal = np.concatenate([r.signal for r in recordings])
        return ArraySource(signal, dataset.sample_rate, realtime=realtime,
                           description=f"replay of {path} ({len(recordings)} recording(s))")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        from edgekit.data.importers.cwru import SAMPLE_RATE, read_cwru_file  # needs scipy: a host-side convenience

        recording = read_cwru_file(path)
        return ArraySource(recording.signal, SAMPLE_RATE, realtime=realtime, description=f"replay of {path}")
    from edgekit.data.importers.files import READERS, SUFFIXES

    kind = next((k for k, suffixes in SUFFIXES.items() if suffix in suffixes), None)
    if kind is None:
        raise DataError(f"cannot replay {path.name}: use a .npy, .csv, .txt, .wav or CWRU .mat file, or a dataset "
                        "folder")
    signal, file_rate = READERS[kind](path, 0)
    rate = file_rate or sample_rate
    if rate is None:
        raise ConfigError(f"{path.name} does not say its sample rate; pass --sample-rate")
    return ArraySource(signal, rate, realtime=realtime, description=f"replay of {path}")


def _options(text: str) -> dict[str, str]:
    options = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"source option {item!r} must be key=value")
        options[key.strip()] = value.strip()
    return options


def _synth(text: str, realtime: bool) -> Source:
    from edgekit.data.scenarios import SCENARIOS, generate_scenario
    from edgekit.data.synth import CLASSES, synthesize
    from edgekit.data.presets import get_preset

    name, _, rest = text.partition(":")
    options = _options(rest)
    known = {"seed", "duration", "change_at", "preset"}
    if set(options) - known:
        raise ConfigError(f"unknown synth option(s) {sorted(set(options) - known)}; known: {sorted(known)}")
    try:
        seed = int(options.get("seed", 0))
        duration = float(options.get("duration", 60.0))
        change_at = float(options.get("change_at", 0.5))
    except ValueError as exc:
        raise ConfigError(f"synth options must be numbers ({exc})") from None
    preset = options.get("preset", "motor")
    if name in SCENARIOS:
        dataset = generate_scenario(name, preset, seed=seed, duration_s=duration, change_at=change_at)
        return ArraySource(dataset.recordings[0].signal, dataset.sample_rate, realtime=realtime,
                           description=f"synthetic scenario {name} (seed {seed}, {duration:g} s)")
    if name in CLASSES:
        machine = get_preset(preset)
        signal = synthesize(name, machine, duration_s=duration, rng=seed)
        return ArraySource(signal, machine.sample_rate, realtime=realtime,
                           description=f"synthetic {name} machine (seed {seed}, {duration:g} s)")
    raise ConfigError(f"unknown synth source {name!r}; scenarios: {', '.join(SCENARIOS)}; "
                      f"stationary machines: {', '.join(CLASSES)}")


def _driver(text: str) -> Source:
    module_name, _, rest = text.partition(":")
    class_name, _, option_text = rest.partition(":")
    if not module_name or not class_name:
        raise ConfigError("a driver source is driver:package.module:ClassName[:key=value,...]")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import sensor driver module {module_name!r} ({exc})") from None
    driver_class = getattr(module, class_name, None)
    if not (isinstance(driver_class, type) and issubclass(driver_class, Source)):
        raise ConfigError(f"{module_name}.{class_name} is not an edgekit.runtime.sources.Source subclass")
    return driver_class(**_options(option_text))


def open_source(text: str, *, sample_rate: float | None = None, realtime: bool = False) -> Source:
    """The source a ``--source`` string names (see the module doc); ``sample_rate`` for formats without one."""
    kind, _, rest = text.partition(":")
    if kind == "replay" and rest:
        return _replay(rest, sample_rate, realtime)
    if kind == "synth" and rest:
        return _synth(rest, realtime)
    if kind == "stdin":
        if sample_rate is None:
            raise ConfigError("stdin carries no sample rate; pass --sample-rate")
        return StdinSource(sample_rate, rest or "f32")
    if kind == "driver" and rest:
        return _driver(rest)
    raise ConfigError(f"unknown source {text!r}; use replay:FILE, synth:SCENARIO, stdin[:csv] or "
                      "driver:module:Class")
