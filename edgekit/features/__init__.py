"""Feature extraction, one code path for training and the device.

``extract`` (batch) and ``StreamingExtractor`` (on the device) compute the features named by ``feature_names``
for a ``FeatureSpec``: numba kernels when numba and rocket-fft are installed, else the numpy ``reference``,
which defines them. Importing this package imports numpy only; numba is loaded at the first extraction.

>>> import numpy as np
>>> from edgekit.features import FeatureSpec, extract, feature_names
>>> spec = FeatureSpec(sample_rate=12000, window=1024)
>>> windows = np.random.default_rng(0).standard_normal((10, 1024)).astype(np.float32)
>>> extract(windows, spec).shape == (10, len(feature_names(spec)))
True
"""

from edgekit.features.extract import extract, extract_with_quality
from edgekit.features.framing import frame
from edgekit.features.quality import QUALITY_CONSTANT, QUALITY_NONFINITE, QUALITY_SATURATED
from edgekit.features.spec import FeatureSpec, feature_names, feature_spec
from edgekit.features.streaming import StreamingExtractor

__all__ = [
    "FeatureSpec",
    "feature_names",
    "feature_spec",
    "extract",
    "extract_with_quality",
    "StreamingExtractor",
    "frame",
    "QUALITY_NONFINITE",
    "QUALITY_CONSTANT",
    "QUALITY_SATURATED",
]
