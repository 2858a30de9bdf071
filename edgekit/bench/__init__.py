"""Benchmark a bundle on this machine: what each artifact costs and how well it does, as the device will run it.

``measure.benchmark_bundle`` measures, for every artifact whose engine this machine has: batch-1 latency
(p50/p99), throughput at a larger batch, file size, accuracy on a dataset when one is given, and, in a fresh
process per artifact pinned to one core, the runtime's cold start (process start to first prediction), its peak
RSS and its end-to-end real-time factor. ``report`` turns the result into JSON, Markdown and a PNG plot.
The ``edgekit bench`` command is a thin layer over both.
"""

from edgekit.errors import EdgekitError

# Defaults shared by the library and the command; here so that ``edgekit --help`` does not import numpy for them.
DEFAULT_BATCH = 64
DEFAULT_SECONDS = 60.0
DEFAULT_MAX_WINDOWS = 5000


class BenchError(EdgekitError):
    """Nothing to benchmark, or a measurement that could not be made."""
