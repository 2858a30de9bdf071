"""Sources, the window buffer and the data-quality checks of the device side."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.data.synth import CLASSES, synthesize
from edgekit.errors import ConfigError, DataError
from edgekit.features import frame
from edgekit.runtime.quality import (FLAGS, QUALITY_CLIPPED, QUALITY_FLATLINE, QUALITY_SPIKES, QualityCounter,
                                     check_windows, flag_names)
from edgekit.runtime.sources import ArraySource, Chunk, Source, StdinSource, open_source
from edgekit.runtime.windowing import WindowBuffer


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), window=st.integers(1, 300), hop=st.integers(1, 400),
       cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_window_buffer_gives_the_windows_frame_gives(n, window, hop, cuts):
    signal = np.arange(n, dtype=np.float32)
    buffer = WindowBuffer(window, hop)
    pieces = np.split(signal, sorted(c for c in cuts if c <= n))
    got = np.concatenate([buffer.push(p) for p in pieces] + [np.empty((0, window), np.float32)])
    np.testing.assert_array_equal(got, np.asarray(frame(signal, window, hop)))


def test_array_source_chunks_cover_the_signal_in_order():
    signal = np.arange(10_000, dtype=np.float32)
    chunks = list(ArraySource(signal, 12000.0, chunk=3000).chunks())
    assert [len(c.samples) for c in chunks] == [3000, 3000, 3000, 1000]
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), signal)
    assert {c.sample_rate for c in chunks} == {12000.0}


def test_stdin_float32_survives_samples_split_across_reads():
    values = np.linspace(-1, 1, 1001, dtype="<f4")

    class Trickle(io.BytesIO):  # a pipe hands out bytes in pieces that split samples
        def read(self, size=-1):
            return super().read(7)

    got = np.concatenate([c.samples for c in StdinSource(12000, "f32", Trickle(values.tobytes())).chunks()])
    np.testing.assert_array_equal(got, values)


def test_stdin_csv_turns_garbled_lines_into_flagged_nan_not_a_crash():
    text = b"0.5\n-0.25\nnot-a-number\n\n1e-3\n"
    got = np.concatenate([c.samples for c in StdinSource(12000, "csv", io.BytesIO(text)).chunks()])
    assert got[:2].tolist() == [0.5, -0.25] and np.isnan(got[2]) and got[3] == np.float32(1e-3)


def test_replay_of_npy_and_dataset(tmp_path):
    from edgekit.data.scenarios import generate_scenario
    from edgekit.data.store import save_dataset

    signal = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    np.save(tmp_path / "x.npy", signal)
    source = open_source(f"replay:{tmp_path / 'x.npy'}", sample_rate=12000)
    np.testing.assert_array_equal(np.concatenate([c.samples for c in source.chunks()]), signal)
    dataset = generate_scenario("gain_change", duration_s=2.0)
    save_dataset(dataset, tmp_path / "ds")
    chunks = list(open_source(f"replay:{tmp_path / 'ds'}").chunks())
    assert chunks[0].sample_rate == dataset.sample_rate
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), dataset.recordings[0].signal)


def test_synth_sources_match_the_generator():
    from edgekit.data.scenarios import generate_scenario

    source = open_source("synth:spikes:seed=2,duration=3")
    expected = generate_scenario("spikes", seed=2, duration_s=3.0).recordings[0].signal
    np.testing.assert_array_equal(np.concatenate([c.samples for c in source.chunks()]), expected)
    assert len(np.concatenate([c.samples for c in open_source("synth:ball:duration=1").chunks()])) == 12000


@pytest.mark.parametrize("text, message", [
    ("synth:nope", "unknown synth source 'nope'; scenarios: gain_change"),
    ("synth:gain_change:seed", "source option 'seed' must be key=value"),
    ("synth:gain_change:speed=3", "unknown synth option(s) ['speed']"),
    ("replay:/no/such/file.npy", "replay source /no/such/file.npy does not exist"),
    ("tcp:1234", "unknown source 'tcp:1234'; use replay:FILE, synth:SCENARIO, stdin[:csv] or driver:module:Class"),
    ("driver:edgekit.errors:DataError", "edgekit.errors.DataError is not an edgekit.runtime.sources.Source"),
    ("driver:no_such_module_x:Thing", "cannot import sensor driver module 'no_such_module_x'"),
])
def test_bad_source_strings_are_clear_errors(text, message):
    with pytest.raises((ConfigError, DataError)) as info:
        open_source(text, sample_rate=12000)
    assert message in str(info.value)


class ConstantDriver(Source):
    """A sensor driver as a user writes one: options arrive as strings."""

    def __init__(self, value: str = "0.5", n: str = "2048"):
        self.value, self.n = float(value), int(n)

    def chunks(self):
        yield Chunk(np.full(self.n, self.value, np.float32), 12000.0)


def test_a_driver_plugs_in_by_module_and_class_name():
    source = open_source(f"driver:{__name__}:ConstantDriver:value=0.25,n=100", sample_rate=12000)
    (chunk,) = list(source.chunks())
    assert chunk.samples.tolist() == [0.25] * 100


def test_quality_checks_raise_no_flags_on_clean_machines_of_every_class():
    # The thresholds' margins were measured on these classes and on the CWRU files (edgekit.runtime.quality).
    for label in CLASSES:
        windows = np.array(frame(synthesize(label, duration_s=5, rng=3), 1024, 512))
        assert not check_windows(windows).any(), label


def test_quality_checks_find_what_the_scenarios_inject():
    from edgekit.data.scenarios import generate_scenario

    recording = generate_scenario("spikes", seed=1, duration_s=20).recordings[0]
    windows = np.array(frame(recording.signal, 1024, 512))
    positions = np.array(recording.meta["injected"]["positions"])
    holds_spike = np.array([((positions >= i * 512) & (positions < i * 512 + 1024)).any()
                            for i in range(len(windows))])
    flagged = (check_windows(windows) & QUALITY_SPIKES) > 0
    np.testing.assert_array_equal(flagged, holds_spike)


def test_clipping_and_partial_flatline_are_flagged():
    rng = np.random.default_rng(4)
    windows = rng.normal(0, 0.2, (3, 1024)).astype(np.float32)
    windows[0] = np.clip(windows[0] * 5, -0.8, 0.8)          # an ADC at its limits
    windows[1, 300:450] = windows[1, 299]                     # stuck for 150 samples
    flags = check_windows(windows)
    assert flags[0] & QUALITY_CLIPPED and flags[1] & QUALITY_FLATLINE and flags[2] == 0


def test_quality_counter_keeps_period_and_totals_and_restores_totals():
    counter = QualityCounter()
    counter.add(np.array([0, FLAGS["nonfinite"], FLAGS["nonfinite"] | FLAGS["constant"]], np.uint8))
    assert counter.take() == {"windows": 3, "skipped": 2, "flags": {"constant": 1, "nonfinite": 2}}
    restored = QualityCounter(counter.totals())
    restored.add(np.array([FLAGS["spikes"]], np.uint8))
    assert restored.totals() == {"windows": 4, "skipped": 3, "flags": {"constant": 1, "nonfinite": 2, "spikes": 1}}
    assert flag_names(0) == []
