"""FeatureSpec: defaults resolved once, exact round trips, and errors that name the field and the valid values."""

import json
import re

import pytest

from edgekit.bearing import BearingGeometry
from edgekit.errors import ConfigError
from edgekit.features import FeatureSpec, feature_names


def test_defaults_are_resolved_and_stored():
    spec = FeatureSpec(sample_rate=12000, window=1024)
    assert spec == FeatureSpec()
    assert spec.hop == 512
    assert spec.band_edges == tuple(750.0 * i for i in range(9))
    assert spec.envelope_band == (1000.0, 5000.0)
    assert spec.groups == ("time", "spectral", "envelope")
    assert not spec.envelope_enabled


def test_round_trip_through_json_is_exact():
    spec = FeatureSpec(sample_rate=25600, window=2000, hop=300, groups=("spectral", "time"),
                       band_edges=(0.1, 1.0 / 3.0, 5000.0, 12800.0), envelope_band=(1234.5678, 9000.0),
                       envelope_harmonics=4, bearing=BearingGeometry.named("6203"), rpm=1772.25)
    data = json.loads(json.dumps(spec.to_dict()))
    again = FeatureSpec.from_dict(data)
    assert again == spec and again.to_dict() == spec.to_dict()
    assert again.groups == ("time", "spectral")  # stored in the canonical (output) order
    assert FeatureSpec.from_dict(json.loads(json.dumps(FeatureSpec().to_dict()))) == FeatureSpec()
    assert FeatureSpec.from_dict({}) == FeatureSpec()


def test_from_dict_rejects_unknown_keys_by_name():
    with pytest.raises(ConfigError, match=re.escape("unknown feature spec keys ['hopp', 'windw']; valid keys: [")):
        FeatureSpec.from_dict({"windw": 512, "hopp": 3})
    with pytest.raises(ConfigError, match="a feature spec must be a dict, got list"):
        FeatureSpec.from_dict([1024])


@pytest.mark.parametrize("kwargs, message", [
    ({"sample_rate": 0}, "sample_rate must be a positive finite number of Hz, got 0"),
    ({"sample_rate": float("nan")}, "sample_rate must be a positive finite number of Hz, got nan"),
    ({"window": 8}, "window must be an integer number of samples >= 16, got 8"),
    ({"window": 1024.0}, "window must be an integer number of samples >= 16, got 1024.0"),
    ({"hop": 0}, "hop must be an integer in 1..1024 (the window), got 0"),
    ({"hop": 1025}, "hop must be an integer in 1..1024 (the window), got 1025"),
    ({"groups": ("time", "wavelet", "fft")},
     "unknown feature groups ['wavelet', 'fft']; valid groups: ['time', 'spectral', 'envelope']"),
    ({"groups": "time"}, "groups must be a tuple of group names from ['time', 'spectral', 'envelope'], got 'time'"),
    ({"groups": ()}, "groups must name each of ['time', 'spectral', 'envelope'] at most once and at least one"),
    ({"groups": ("envelope",)}, "groups=('envelope',) gives no features without both bearing and rpm"),
    ({"band_edges": (0.0, 500.0, 500.0)},
     "band_edges must be at least 2 strictly increasing frequencies within [0, 6000] Hz (0 to Nyquist), "
     "got [0.0, 500.0, 500.0]"),
    ({"band_edges": (0.0, 7000.0)}, "within [0, 6000] Hz (0 to Nyquist), got [0.0, 7000.0]"),
    ({"band_edges": (100.0,)}, "band_edges must be at least 2 strictly increasing"),
    ({"envelope_band": (0.0, 3000.0)}, "envelope_band must satisfy 0 < low < high < 6000 Hz (Nyquist), got (0, 3000)"),
    ({"envelope_band": (1000.0, 6000.0)}, "envelope_band must satisfy 0 < low < high < 6000 Hz (Nyquist)"),
    ({"envelope_band": (1000.0, 1005.0)}, "envelope_band (1000, 1005) Hz holds no FFT bin; bins are 11.7188 Hz apart"),
    ({"envelope_harmonics": 0}, "envelope_harmonics must be an integer >= 1, got 0"),
    ({"bearing": "6205"}, "bearing must be a BearingGeometry (e.g. BearingGeometry.named('6205')) or None, got '6205'"),
    ({"rpm": -5.0}, "rpm must be a positive finite number or None, got -5.0"),
])
def test_validation_errors_name_the_field_and_valid_values(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        FeatureSpec(**kwargs)


def test_feature_names():
    names = feature_names(FeatureSpec())
    assert names == [
        "time_mean", "time_std", "time_rms", "time_peak", "time_peak_to_peak", "time_crest", "time_kurtosis",
        "time_skewness", "time_shape", "time_impulse", "time_clearance",
        "band_0_750hz", "band_750_1500hz", "band_1500_2250hz", "band_2250_3000hz", "band_3000_3750hz",
        "band_3750_4500hz", "band_4500_5250hz", "band_5250_6000hz",
        "spec_centroid", "spec_spread", "spec_entropy", "spec_kurtosis", "spec_dominant",
    ]
    with_envelope = feature_names(FeatureSpec(bearing=BearingGeometry.named("6205"), rpm=1797))
    assert with_envelope == names + ["env_bpfo", "env_bpfi", "env_bsf", "env_ftf"]
    # Only the bearing, or only the rpm: the envelope group contributes nothing (documented).
    assert feature_names(FeatureSpec(rpm=1797)) == names
    odd = feature_names(FeatureSpec(groups=("spectral",), band_edges=(12.5, 100.0, 1e-3 + 100)))
    assert odd[:2] == ["band_12p5_100hz", "band_100_100p001hz"]
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in odd + with_envelope)
