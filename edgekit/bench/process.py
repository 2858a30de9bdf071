"""The device loop in a fresh process pinned to one core: cold start, peak RSS and the real-time factor.

A process of its own because a process's peak RSS never goes down and its first prediction happens only once.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edgekit.bench import BenchError

CHILD_TIMEOUT_S = 600.0
FIRST_PREDICTION = "edgekit-bench: first prediction"

# The child imports only this module before its clock starts, so its start-up is the runtime's, not the harness's.
_CHILD = "import sys; from edgekit.bench.process import _child; _child(sys.argv[1])"


def _maxrss_kib() -> int:
    """This process's peak resident set so far, in KiB."""
    # Linux's ru_maxrss carries over the spawning process's peak across fork and exec (a child of a 200 MB parent
    # starts at 200 MB); VmHWM is the high-water mark of this program's own memory alone.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024) if sys.platform == "darwin" else int(peak)  # macOS reports bytes, Linux KiB


def _child(payload: str) -> None:
    """The fresh process of ``runtime_in_subprocess``: prints a marker at its first prediction, then its figures."""
    started = time.perf_counter()
    args = json.loads(payload)
    if args["core"] is not None:
        os.sched_setaffinity(0, {args["core"]})
    from edgekit.bundle import open_bundle
    from edgekit.runtime.pipeline import Runtime, RuntimeOptions
    from edgekit.runtime.sources import ArraySource, Chunk

    imported, rss_imported = time.perf_counter(), _maxrss_kib()
    bundle = open_bundle(args["bundle"], trust="hashes")
    runtime = Runtime(bundle, RuntimeOptions(engine=args["engine"], artifact=args["artifact"], threads=1))
    loaded = time.perf_counter()
    signal = np.load(args["signal"], mmap_mode="r")
    rate, window = runtime.spec.sample_rate, runtime.spec.window
    first = runtime.process(Chunk(np.array(signal[:window]), rate))
    predicted = time.perf_counter()
    print(FIRST_PREDICTION, flush=True)
    rss_first = _maxrss_kib()
    rest = np.array(signal[window:])  # in memory before the clock starts, as a sensor's samples are
    wall, cpu = time.perf_counter(), time.process_time()
    summary = runtime.run(ArraySource(rest, rate))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    seconds = len(rest) / rate
    print(json.dumps({
        "startup_s": {"imports": imported - started, "load": loaded - imported, "first_window": predicted - loaded},
        "first_window_classified": not first[0].get("skipped", False),
        "rss_kib": {"after_imports": rss_imported, "after_first_prediction": rss_first, "peak": _maxrss_kib()},
        "end_to_end": {"signal_s": seconds, "wall_s": wall, "cpu_s": cpu, "windows": summary["windows"],
                       "skipped_windows": summary["quality"]["skipped"],
                       "real_time_factor": seconds / max(wall, 1e-9)},
    }), flush=True)


def one_core() -> int | None:
    """The core the device loop is pinned to: the highest this process may use (None where it cannot pin)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def runtime_in_subprocess(bundle_dir, artifact: dict, signal_file, core: int | None,
                          timeout_s: float = CHILD_TIMEOUT_S) -> dict:
    """Run ``Runtime`` on ``signal_file`` in a fresh interpreter pinned to ``core``: cold start, RSS, speed.

    Cold start is timed here, from just before the process is spawned to the moment its first prediction is
    reported, so it includes interpreter start-up, imports, bundle verification and model load.
    """
    import edgekit

    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    root = str(Path(edgekit.__file__).resolve().parents[1])  # the child imports the same edgekit as this process
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    payload = json.dumps({"bundle": str(bundle_dir), "artifact": artifact["file"], "engine": artifact["engine"],
                          "signal": str(signal_file), "core": core})
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a chatty child cannot block on it
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, payload], stdout=subprocess.PIPE, stderr=stderr,
                                text=True, env=env)
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        try:
            cold_start = None
            line = proc.stdout.readline()
            if line.strip() == FIRST_PREDICTION:
                cold_start = time.perf_counter() - started
            out = proc.stdout.read()
            proc.wait()
        finally:
            killer.cancel()
            proc.stdout.close()
        if proc.returncode != 0 or cold_start is None:
            stderr.seek(0)
            lines = [ln for ln in stderr.read().splitlines() if ln.strip()]
            why = "timed out" if proc.returncode == -9 else f"exit status {proc.returncode}"
            raise BenchError(f"{artifact['file']}: the runtime process failed ({why}): "
                             f"{lines[-1] if lines else 'no error output'}; run 'edgekit run' on this bundle "
                             "to see the full error")
    result = json.loads(out.strip().splitlines()[-1])
    result["cold_start_s"] = cold_start
    result["end_to_end"]["core"] = core
    return result
