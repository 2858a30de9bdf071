"""Public entry points: input validation, quality flags, light imports and the numpy-only fallback."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgekit.errors import ConfigError, DataError
from edgekit.features import (
    QUALITY_CONSTANT,
    QUALITY_NONFINITE,
    FeatureSpec,
    extract,
    extract_with_quality,
    feature_names,
    reference,
)
from edgekit.bearing import BearingGeometry
from feature_checks import assert_matches_reference

SPEC = FeatureSpec(window=64)


@pytest.mark.parametrize("windows, message", [
    (np.zeros((3, 64), dtype=np.int16), "windows must be float32 or float64 with shape (n, 64), got dtype int16"),
    (np.zeros((3, 64), dtype=np.float16), "windows must be float32 or float64 with shape (n, 64), got dtype float16"),
    (np.zeros((3, 64), dtype=complex), "got dtype complex128"),
    (np.zeros(64, dtype=np.float32), "windows must have shape (n, 64) for a spec with window=64, got (64,)"),
    (np.zeros((3, 63), dtype=np.float32), "got (3, 63); cut a 1-D signal with frame(signal, spec.window, spec.hop)"),
    (np.zeros((2, 3, 64)), "got (2, 3, 64)"),
    ([[0.0] * 64], "windows must be a float32 or float64 numpy array of shape (n, 64), got list"),
])
def test_bad_windows_raise_data_error_with_the_expected_shape(windows, message):
    with pytest.raises(DataError) as info:
        extract(windows, SPEC)
    assert message in str(info.value)


def test_spec_must_be_a_feature_spec():
    with pytest.raises(ConfigError, match="spec must be a FeatureSpec, got dict"):
        extract(np.zeros((1, 64)), SPEC.to_dict())


def test_shapes_dtypes_and_layouts():
    rng = np.random.default_rng(21)
    base = rng.standard_normal((9, 128))
    values, flags = extract_with_quality(base[:, ::2], SPEC)  # strided view
    assert values.shape == (9, len(feature_names(SPEC))) and values.dtype == np.float32 and flags.dtype == np.uint8
    np.testing.assert_array_equal(values, extract(np.ascontiguousarray(base[:, ::2]), SPEC))
    np.testing.assert_array_equal(extract(base[:, :64].astype(">f4"), SPEC), extract(base[:, :64], SPEC))
    assert extract(np.empty((0, 64), np.float32), SPEC).shape == (0, 24)
    read_only = base[:, :64].copy()
    read_only.flags.writeable = False
    np.testing.assert_array_equal(extract(read_only, SPEC), extract(base[:, :64], SPEC))


def test_quality_flags_combine():
    windows = np.zeros((3, 64), dtype=np.float32)
    windows[0, 3] = np.nan            # all zeros after replacement: also constant
    windows[1] = np.linspace(-1, 1, 64)
    windows[1, 5] = np.inf
    windows[2] = 7.0
    _, flags = extract_with_quality(windows, SPEC)
    assert flags.tolist() == [QUALITY_NONFINITE | QUALITY_CONSTANT, QUALITY_NONFINITE, QUALITY_CONSTANT]


def run_python(code: str, **env) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_keeps_heavy_modules_out():
    out = run_python("""
        import sys
        import edgekit.features
        heavy = ("scipy", "numba", "torch", "onnx", "matplotlib", "tensorflow")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    """)
    # numba too: `import numba` imports scipy when installed, so the kernels load at the first extraction.
    assert out == "[]"


def test_fallback_without_numba_is_numpy_only_and_matches():
    spec = FeatureSpec(window=256, bearing=BearingGeometry.named("6205"), rpm=1797.0)
    windows = np.random.default_rng(22).standard_normal((20, 256)).astype(np.float32)
    windows[3, 7] = np.nan
    # Simulate a device without numba: the import fails, extract falls back and pulls in no scipy either.
    out = run_python(f"""
        import sys
        sys.modules["numba"] = None
        import numpy as np
        from edgekit.features import FeatureSpec, extract_with_quality, _backend
        spec = FeatureSpec.from_dict({spec.to_dict()!r})
        windows = np.random.default_rng(22).standard_normal((20, 256)).astype(np.float32)
        windows[3, 7] = np.nan
        values, flags = extract_with_quality(windows, spec)
        print(_backend.backend_name(), "scipy" in sys.modules, values.tobytes().hex(), flags.tobytes().hex())
    """)
    name, has_scipy, values_hex, flags_hex = out.split()
    assert (name, has_scipy) == ("numpy", "False")
    fallback = np.frombuffer(bytes.fromhex(values_hex), dtype=np.float32).reshape(20, -1)
    fallback_flags = np.frombuffer(bytes.fromhex(flags_hex), dtype=np.uint8)
    # The fallback is the reference, bit for bit, which the numba kernels match within the shared tolerances.
    expected, expected_flags = reference.extract_with_quality(windows, spec)
    np.testing.assert_array_equal(fallback, expected)
    np.testing.assert_array_equal(fallback_flags, expected_flags)
    assert_matches_reference(windows, spec, *extract_with_quality(windows, spec))


def test_environment_variable_forces_the_numpy_path():
    out = run_python("""
        import numpy as np
        from edgekit.features import FeatureSpec, extract, _backend
        extract(np.zeros((1, 64)), FeatureSpec(window=64))
        print(_backend.backend_name())
    """, EDGEKIT_NO_NUMBA="1")
    assert out == "numpy"
