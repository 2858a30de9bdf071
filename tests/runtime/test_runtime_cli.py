"""``edgekit run`` from the command line, and the rule that the device side stays light."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.data.synth import synthesize

FORBIDDEN = ("torch", "tensorflow", "onnx", "scipy", "sklearn", "edgekit.train", "edgekit.export", "edgekit.fleet")


def test_the_runtime_imports_and_runs_without_training_libraries(cnn_bundle, tmp_path):
    """A fresh interpreter where scipy cannot be imported (as on a device without it) runs both engines."""
    script = textwrap.dedent(f"""
        import importlib.abc, json, sys
        class NoScipy(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "scipy" or name.startswith("scipy."):
                    raise ImportError("scipy is not on this device")
        sys.meta_path.insert(0, NoScipy())
        import numpy as np
        import edgekit.runtime
        from edgekit.bundle import open_bundle
        from edgekit.runtime.pipeline import Runtime, RuntimeOptions
        from edgekit.runtime.sources import open_source
        from edgekit.runtime import telemetry, outbox
        import edgekit.protocol
        bundle = open_bundle({str(cnn_bundle)!r}, trust="hashes")
        classes = []
        for artifact in ("model_int8.onnx", "model_int8.tflite"):
            runtime = Runtime(bundle, RuntimeOptions(artifact=artifact), emit=classes.append)
            runtime.run(open_source("synth:normal:duration=1"), max_windows=5)
        heavy = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in {FORBIDDEN!r}))
        print(json.dumps({{"heavy": heavy, "numba": "numba" in sys.modules,
                          "windows": len([c for c in classes if "class" in c])}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"heavy": [], "numba": True, "windows": 10}


def write_signal(tmp_path, seconds=2.0):
    path = tmp_path / "signal.npy"
    np.save(path, synthesize("inner_race", duration_s=seconds, rng=2))
    return path


def test_run_replays_a_file_and_exits_zero_with_one_line_per_window(cnn_bundle, tmp_path):
    signal = write_signal(tmp_path)
    result = CliRunner().invoke(cli, ["run", str(cnn_bundle), "--source", f"replay:{signal}", "--max-windows", "12",
                                      "--report-every", "5", "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    windows = [line for line in lines if "window" in line and "report" not in line]
    reports = [line for line in lines if "report" in line]
    assert [w["window"] for w in windows] == list(range(12))
    assert [r["windows"] for r in reports] == [5, 5, 2]
    assert windows[-1]["smoothed"] == "inner_race"
    assert (tmp_path / "state" / "runtime_state.json").is_file()


def test_quiet_prints_reports_only(cnn_bundle, tmp_path):
    signal = write_signal(tmp_path)
    result = CliRunner().invoke(cli, ["run", str(cnn_bundle), "--source", f"replay:{signal}", "--quiet",
                                      "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert all("report" in json.loads(line) for line in result.stdout.splitlines())


def test_user_mistakes_are_one_line_errors(cnn_bundle, tmp_path):
    runner = CliRunner()
    cases = [
        (["--source", "synth:nope"], "Error: unknown synth source 'nope'"),
        (["--source", "synth:normal", "--artifact", "model.bin"], "Error: no runnable artifact 'model.bin'"),
        (["--source", "synth:normal", "--report-every", "3", "--report-seconds", "2"],
         "Error: give the report interval in windows or in seconds, not both"),
        (["--source", "synth:normal", "--mqtt", "http://localhost"], "Error:"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["run", str(cnn_bundle), "--state-dir", str(tmp_path / "s"), *args])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, args


def test_a_changed_bundle_is_refused(cnn_bundle, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(cnn_bundle, copy)
    with open(copy / "model_int8.onnx", "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 1]))
    result = CliRunner().invoke(cli, ["run", str(copy), "--source", "synth:normal"])
    assert result.exit_code == 1 and "model_int8.onnx" in result.output and "Traceback" not in result.output


def test_sigterm_saves_the_state_and_exits_130(cnn_bundle, tmp_path):
    """systemd stops the service with SIGTERM: the detector state is saved, nothing is left half-written."""
    import signal
    import time

    state = tmp_path / "state"
    process = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "run", str(cnn_bundle), "--source",
                                "synth:normal:duration=60", "--realtime", "--report-every", "8", "--state-dir",
                                str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (state / "runtime_state.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    saved = json.loads((state / "runtime_state.json").read_text())
    printed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    windows = [line for line in printed if "report" not in line]
    assert windows and saved["windows"] == len(windows)  # every window processed is counted in the saved state
