"""frame() and StreamingExtractor: pushing a stream in any chunks gives the batch features of its frames."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.bearing import BearingGeometry
from edgekit.errors import DataError
from edgekit.features import FeatureSpec, StreamingExtractor, extract_with_quality, frame


def test_frame_starts_at_multiples_of_hop_and_drops_the_tail():
    framed = frame(np.arange(10), window=4, hop=3)
    np.testing.assert_array_equal(framed, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    assert frame(np.arange(3.0), 4, 1).shape == (0, 4)
    assert frame(np.arange(4.0), 4, 100).shape == (1, 4)


@pytest.mark.parametrize("args, message", [
    ((np.zeros((2, 8)), 4, 2), "frame expects a 1-D signal, got shape (2, 8)"),
    ((np.zeros(8), 0, 2), "window must be a positive integer number of samples, got 0"),
    ((np.zeros(8), 4, 1.5), "hop must be a positive integer number of samples, got 1.5"),
])
def test_frame_errors(args, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        frame(*args)


SPEC = FeatureSpec(window=64, hop=24, bearing=BearingGeometry.named("6205"), rpm=1797.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.lists(st.integers(0, 200), max_size=12), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**32 - 1))
def test_streaming_equals_batch(length, cuts, dtype, seed):
    stream = np.random.default_rng(seed).standard_normal(length).astype(dtype)
    if length > 10:
        stream[length // 3] = np.nan  # flags travel too
    bounds = np.cumsum([0] + cuts)
    chunks = [stream[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if a <= length] + [stream[min(bounds[-1], length):]]
    streamer = StreamingExtractor(SPEC)
    pushed = [streamer.push_with_quality(chunk) for chunk in chunks]
    values = np.concatenate([v for v, _ in pushed])
    flags = np.concatenate([q for _, q in pushed])
    want_values, want_flags = extract_with_quality(frame(stream, SPEC.window, SPEC.hop), SPEC)
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(flags, want_flags)
    assert streamer.samples_seen == length and streamer.windows_emitted == len(want_values)


def test_chunk_sizes_zero_one_and_larger_than_a_window():
    stream = np.random.default_rng(5).standard_normal(1000).astype(np.float32)
    streamer = StreamingExtractor(SPEC)
    sizes = [0, 1, 1, 63, 0, 200, 1, 500]
    bounds = np.cumsum([0] + sizes)
    parts = [streamer.push(stream[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    assert [len(p) for p in parts] == [0, 0, 0, 1, 0, 8, 0, 21]
    np.testing.assert_array_equal(np.concatenate(parts), extract_with_quality(frame(stream[:767], 64, 24), SPEC)[0])
    streamer.reset()
    assert streamer.samples_seen == 0 and len(streamer.push(stream[:63])) == 0 and len(streamer.push(stream[:1])) == 1


def test_push_rejects_bad_input():
    streamer = StreamingExtractor(SPEC)
    with pytest.raises(DataError, match=r"push expects a 1-D array of real samples, got shape \(2, 2\)"):
        streamer.push(np.zeros((2, 2)))
    with pytest.raises(DataError, match="and dtype complex128"):
        streamer.push(np.zeros(3, dtype=complex))
    assert streamer.push(np.arange(64, dtype=np.int16)).shape == (1, 28)  # integer samples are fine
