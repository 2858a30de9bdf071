"""Quality flag bits that ``extract_with_quality`` returns per window (OR-ed together; 0 means clean).

A bad window is flagged and still gets finite features, never an exception and never a silent drop: the
runtime counts the flags, and training can drop or keep flagged windows on purpose.
"""

#: Some samples were NaN, +-inf or beyond the float32 range; they were replaced by 0 before computing.
QUALITY_NONFINITE = 1
#: Every sample (after the replacement above) had the same value: no vibration, e.g. a dead or saturated sensor.
QUALITY_CONSTANT = 2
#: A feature (usually a band power of a huge signal) exceeded the float32 range and was saturated to +-FLOAT32_MAX.
QUALITY_SATURATED = 4

QUALITY_FLAGS = {"nonfinite": QUALITY_NONFINITE, "constant": QUALITY_CONSTANT, "saturated": QUALITY_SATURATED}
