"""Every numba flag the feature kernels use, in one place.

Importing this module imports nothing; ``_kernels`` reads these when it is imported (only once numba is needed).
numba's on-disk cache is keyed on ``_kernels.py`` alone: after changing a compile flag here, touch ``_kernels.py``
(or delete ``__pycache__/*.nbi``/``*.nbc``) or cached kernels keep the old flags. BLOCK_ROWS is passed at run time.
"""

#: Compiled kernels are cached next to the source (``__pycache__``), so a device pays the compile once.
CACHE = True

#: Fast-math without ``nnan``/``ninf``: the kernels test samples with ``isfinite``, which those two flags would
#: let LLVM fold to "always true". ``reassoc`` (with ``nsz``) lets LLVM vectorize the sums, ``contract`` allows FMA.
#: These change rounding at the 1e-15 level only, far inside the tolerances of the tests against the reference.
FASTMATH = frozenset({"nsz", "reassoc", "contract", "arcp"})

#: Division by zero gives inf/NaN instead of raising ZeroDivisionError. The kernels guard every denominator
#: themselves; the Python error model's check on each division would stop LLVM from vectorizing the loops (4x).
ERROR_MODEL = "numpy"

#: Windows are spread over numba's threads (``numba.set_num_threads`` caps them) in blocks of this many rows,
#: one batched FFT call per block. A/B runs on the benchmarks/features.py host (2-core EPYC VM): 8 to 64 rows were
#: within its +-15% noise, 32 best or tied at 1 and 2 threads; its scratch (32 x 1024 float64 and its spectrum,
#: about 0.5 MB per thread) is about one core's L2, so larger blocks stop paying on smaller caches.
PARALLEL = True
BLOCK_ROWS = 32


def jit_options(parallel: bool = False) -> dict:
    """Keyword arguments for ``numba.njit``."""
    return {"cache": CACHE, "fastmath": set(FASTMATH), "parallel": parallel and PARALLEL, "nogil": True,
            "error_model": ERROR_MODEL}
