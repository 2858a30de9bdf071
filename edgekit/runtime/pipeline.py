"""The device loop: samples -> windows -> quality checks -> features -> model -> smoothing -> reports.

One ``Runtime`` per bundle. ``process(chunk)`` handles whatever a source delivers; every window gives one JSON
line (``emit``), every ``report_every`` windows a drift report goes out, and the state that must survive a
restart (window count, report interval, drift detector, quality totals) is written to the state dir after each
report. Telemetry is anything with ``publish(kind, body)``; commands from the fleet arrive on another thread and
are queued, then applied between chunks by the loop's own thread.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import queue
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.errors import ConfigError, EdgekitError
from edgekit.features import FeatureSpec, extract_with_quality, feature_names
from edgekit.jsonable import json_default
from edgekit.runtime.drift_by_class import ClassConditionalDrift
from edgekit.runtime.model import DeployedModel
from edgekit.runtime.quality import (QUALITY_WRONG_LENGTH, QUALITY_WRONG_RATE, QualityCounter, check_windows,
                                     flag_names)
from edgekit.runtime.smoothing import MajorityVote
from edgekit.runtime.sources import Chunk, Source
from edgekit.runtime.windowing import WindowBuffer

log = logging.getLogger("edgekit.runtime")

STATE_FILE = "runtime_state.json"
STATE_VERSION = 1
#: Windows per drift report unless told otherwise: 128 windows (5.5 s at 12 kHz, hop 512) is the report size
#: the drift detector's thresholds were measured with (edgekit.runtime.drift, benchmarks/drift.md).
REPORT_WINDOWS = 128


@dataclass
class RuntimeOptions:
    """What ``edgekit run`` lets the user set; see its --help for each."""

    engine: str | None = None
    artifact: str | None = None
    threads: int = 1
    smoothing: int = 5
    report_every: int | None = None       # windows; None: REPORT_WINDOWS
    report_seconds: float | None = None   # seconds of signal; converted to windows at the spec's hop
    pred_every: int = 0                   # also publish every n-th prediction; 0: only when the decision changes
    upload_buffer: int = 256              # recent raw windows kept for an upload_windows command


class Runtime:
    """Runs a verified bundle on a stream of samples; see the module doc."""

    def __init__(self, bundle, options: RuntimeOptions | None = None, *, telemetry=None,
                 state_dir: str | Path | None = None, emit: Callable[[dict], None] | None = None) -> None:
        self.options = options or RuntimeOptions()
        manifest = bundle.manifest
        self.spec = FeatureSpec.from_dict(manifest["feature_spec"])
        self.model = DeployedModel(bundle, self.options.engine, self.options.artifact, self.options.threads)
        self.classes = self.model.classes
        self.telemetry = telemetry
        self.emit = emit or (lambda record: None)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._bundle_id = self.model.artifact.get("sha256")  # detector state belongs to this artifact
        self._reference = manifest["reference_stats"]
        self.monitor = ClassConditionalDrift(self._reference, feature_names(self.spec), self.classes)
        self.report_every = self._report_interval(self.options.report_every, self.options.report_seconds)
        self.buffer = WindowBuffer(self.spec.window, self.spec.hop)
        self.vote = MajorityVote(self.options.smoothing)
        self.quality = QualityCounter()
        self.windows = 0                      # windows seen, skipped ones included (the stream position)
        self.reports = 0
        self._since_report = 0
        self._decision: tuple[str, bool] | None = None
        self._rate_warned = False
        self._recent: deque[dict] = deque(maxlen=self.options.upload_buffer)  # upload_windows candidates
        self.commands: queue.Queue = queue.Queue()
        self._load_state()

    # -- configuration -------------------------------------------------------------------------------------
    def _report_interval(self, windows: int | None, seconds: float | None) -> int:
        if windows is not None and seconds is not None:
            raise ConfigError("give the report interval in windows or in seconds, not both")
        if seconds is not None:
            if not seconds > 0:
                raise ConfigError(f"report interval must be positive, got {seconds} s")
            return max(1, math.ceil(seconds * self.spec.sample_rate / self.spec.hop))
        if windows is None:
            return REPORT_WINDOWS
        if not isinstance(windows, int) or windows < 1:
            raise ConfigError(f"report interval must be at least 1 window, got {windows!r}")
        return windows

    # -- state that survives a restart ---------------------------------------------------------------------
    def _state_path(self) -> Path | None:
        return self.state_dir / STATE_FILE if self.state_dir is not None else None

    def _load_state(self) -> None:
        path = self._state_path()
        if path is None or not path.is_file():
            return
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            # The outbox (the data) is separate; losing detector state only restarts its persistence counts.
            log.warning("state file %s is unreadable (%s); starting the drift detector afresh", path, exc)
            return
        if state.get("version") != STATE_VERSION or state.get("artifact_sha256") != self._bundle_id:
            log.info("state in %s belongs to another bundle or version; starting afresh", path)
            return
        try:
            self.monitor.load_state_dict(state["drift"])
        except EdgekitError as exc:
            log.warning("drift state in %s not usable (%s); starting the drift detector afresh", path, exc)
            self.monitor = ClassConditionalDrift(self._reference, feature_names(self.spec), self.classes)
            return
        self.windows = int(state["windows"])
        self.reports = int(state["reports"])
        self.report_every = int(state.get("report_every", self.report_every))
        self.quality = QualityCounter(state.get("quality_totals"))
        log.info("resumed from %s: %d windows, %d reports so far", path, self.windows, self.reports)

    def save_state(self) -> None:
        path = self._state_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"version": STATE_VERSION, "artifact_sha256": self._bundle_id, "windows": self.windows,
                 "reports": self.reports, "report_every": self.report_every,
                 "drift": self.monitor.state_dict(), "quality_totals": self.quality.totals()}
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            json.dump(state, handle, default=json_default)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # a power cut leaves the old state or the new one, never half of each

    # -- the loop --------------------------------------------------------------------------------------------
    def run(self, source: Source, max_windows: int | None = None) -> dict:
        """Process ``source`` until it ends (or ``max_windows``); a last report closes the run."""
        start = self.windows
        try:
            for chunk in source.chunks():
                self.apply_commands()
                self.process(chunk, None if max_windows is None else start + max_windows - self.windows)
                if max_windows is not None and self.windows - start >= max_windows:
                    break
        finally:
            source.close()
        self.apply_commands()
        if self._since_report:
            self.report()
        return {"windows": self.windows - start, "reports": self.reports, "quality": self.quality.totals()}

    def process(self, chunk: Chunk, limit: int | None = None) -> list[dict]:
        """Handle one chunk; returns the per-window records it produced (also passed to ``emit``)."""
        extra_flags = 0
        if not math.isclose(chunk.sample_rate, self.spec.sample_rate, rel_tol=1e-6):
            extra_flags = QUALITY_WRONG_RATE
            if not self._rate_warned:
                log.warning("the source delivers %.6g Hz but the model was trained at %.6g Hz; its windows are "
                            "flagged wrong_rate and not classified", chunk.sample_rate, self.spec.sample_rate)
                self._rate_warned = True
        if chunk.window:
            samples = np.asarray(chunk.samples, dtype=np.float32)
            if samples.shape != (self.spec.window,):
                return self._handle(np.zeros((1, self.spec.window), np.float32), QUALITY_WRONG_LENGTH)
            windows = samples[None, :]
        else:
            windows = self.buffer.push(chunk.samples)
        if limit is not None:
            windows = windows[:max(limit, 0)]
        records = []
        begin = 0
        while begin < len(windows):
            # A batch never crosses a report boundary, so its counts land in the right report; bounded in size
            # because a replayed file arrives as one big chunk.
            size = min(256, max(1, self.report_every - self._since_report))
            records += self._handle(windows[begin:begin + size], extra_flags)
            begin += size
        return records

    def _handle(self, windows: np.ndarray, extra_flags: int) -> list[dict]:
        features, flags = extract_with_quality(windows, self.spec)
        flags = check_windows(windows, flags) | np.uint8(extra_flags)
        if extra_flags & QUALITY_WRONG_LENGTH:
            flags[:] = QUALITY_WRONG_LENGTH  # the stand-in window's own flags would only confuse the count
        good = np.flatnonzero(flags == 0)
        probabilities, scores = self.model.predict(windows[good], features[good])
        predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
        self.quality.add(flags)
        self.monitor.update_many(features[good], predicted, confidence,
                                 None if self.model.anomaly is None else scores)
        threshold = self.model.anomaly.threshold if self.model.anomaly is not None else math.inf
        records = []
        result_of = {int(i): j for j, i in enumerate(good)}
        for i in range(len(windows)):
            index = self.windows + i
            t = (index * self.spec.hop + self.spec.window) / self.spec.sample_rate
            j = result_of.get(i)
            if j is None:
                record = {"window": index, "t": round(t, 4), "skipped": True, "quality": flag_names(int(flags[i]))}
            else:
                record = self._classify(index, t, windows[i], int(predicted[j]), float(confidence[j]),
                                        float(scores[j]), threshold)
            records.append(record)
            self.emit(record)
        self.windows += len(windows)
        self._since_report += len(windows)
        if self._since_report >= self.report_every:
            self.report()
        return records

    def _classify(self, index: int, t: float, window: np.ndarray, predicted: int, confidence: float,
                  score: float, threshold: float) -> dict:
        unknown = bool(score > threshold)
        smoothed = self.vote.update(self.classes[predicted])
        record = {"window": index, "t": round(t, 4), "class": self.classes[predicted],
                  "confidence": round(confidence, 4), "smoothed": smoothed,
                  "anomaly": None if math.isnan(score) else round(score, 3), "unknown": unknown}
        # A copy: a view would keep its whole batch of windows alive for as long as it stays in the deque.
        self._recent.append({"window": index, "t": t, "samples": window.copy(), "class": record["class"],
                             "anomaly": record["anomaly"], "unknown": unknown, "drifted": False})
        decision = (smoothed, unknown)
        changed = decision != self._decision
        self._decision = decision
        if self.telemetry is not None and (changed or (self.options.pred_every and
                                                       index % self.options.pred_every == 0)):
            self.telemetry.publish("pred", record)
        return record

    def report(self) -> dict:
        """Close the current report period: drift statistics and data-quality counts, sent and persisted."""
        drift = self.monitor.report()
        body = {"windows": self._since_report, "first_window": self.windows - self._since_report,
                "report_every": self.report_every, "drift": drift, "drift_detected": self.monitor.drift_detected,
                "quality": self.quality.take()}
        if drift.get("over"):
            for candidate in self._recent:  # this period's windows are what upload_windows(only_drifted) sends
                candidate["drifted"] |= candidate["window"] >= body["first_window"]
        self._since_report = 0
        self.reports += 1
        if self.telemetry is not None:
            self.telemetry.publish("drift", body)
        self.emit({"report": self.reports, **body})
        self.save_state()
        return body

    # -- commands from the fleet -------------------------------------------------------------------------------
    def apply_commands(self) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            self.handle_command(command)

    def handle_command(self, command) -> None:
        name, args = command.name, command.args
        if name == "set_report_interval":
            self.report_every = self._report_interval(args.get("windows"), args.get("seconds"))
            log.info("report interval set to %d windows by command", self.report_every)
            self.save_state()
        elif name == "upload_windows":
            self.upload(int(args.get("count", 10)), bool(args.get("only_drifted", True)))
        else:  # protocol.parse_command already refuses unknown names; this guards library callers
            log.warning("ignoring unknown command %r", name)

    def upload(self, count: int, only_drifted: bool = True) -> int:
        """Send the raw samples of up to ``count`` recent windows (drifted or anomalous ones if asked)."""
        chosen = [c for c in self._recent if not only_drifted or c["drifted"] or c["unknown"]][-count:]
        for candidate in chosen:
            body = {"window": candidate["window"], "t": candidate["t"], "sample_rate": self.spec.sample_rate,
                    "class": candidate["class"], "anomaly": candidate["anomaly"], "drifted": candidate["drifted"],
                    "dtype": "float32-le",
                    "samples": base64.b64encode(candidate["samples"].astype("<f4").tobytes()).decode("ascii")}
            if self.telemetry is not None:
                self.telemetry.publish("upload", body)
        log.info("uploaded %d window(s) on command", len(chosen))
        return len(chosen)


def describe(runtime: Runtime) -> dict[str, Any]:
    """A one-line summary of what is running, for the log."""
    return {"artifact": runtime.model.artifact["file"], "engine": runtime.model.engine.name,
            "precision": runtime.model.artifact["precision"], "window": runtime.spec.window,
            "hop": runtime.spec.hop, "sample_rate": runtime.spec.sample_rate, "report_every": runtime.report_every}
