"""``edgekit features``: the features the device computes, on a whole dataset."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from edgekit.cli.output import echo_json, echo_table, format_option
from edgekit.features import feature_spec


def spec_options(func):
    """Options that build a FeatureSpec; shared by every command that extracts features."""
    for option in reversed([
        click.option("--window", default=1024, show_default=True, type=click.IntRange(16), help="Samples per window."),
        click.option("--hop", type=click.IntRange(1), help="Samples between window starts [default: window/2]."),
        click.option("--bearing", help="Bearing designation (e.g. 6205) for envelope features at its defect frequencies."),
        click.option("--rpm", type=click.FloatRange(min=1), help="Shaft speed for the envelope features."),
    ]):
        func = option(func)
    return func


@click.group()
def features() -> None:
    """Extract and list features (one code path for training and the device)."""


@features.command("list")
@click.option("--sample-rate", default=12000.0, show_default=True, type=float)
@spec_options
@format_option
def list_features(sample_rate, window, hop, bearing, rpm, fmt) -> None:
    """List the features a spec produces."""
    from edgekit.features import feature_names

    spec = feature_spec(sample_rate, window, hop, bearing, rpm)
    names = feature_names(spec)
    if fmt == "json":
        echo_json({"spec": spec.to_dict(), "features": names})
    else:
        echo_table([(i, n) for i, n in enumerate(names)], ["#", "feature"])


@features.command("extract")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@spec_options
@click.option("--out", type=click.Path(dir_okay=False), help="Write features, labels and the spec to this .npz file.")
@format_option
def extract_command(dataset, window, hop, bearing, rpm, out, fmt) -> None:
    """Extract features from every window of every recording in DATASET and summarise them per class."""
    from edgekit.data.splits import Segment, cut_windows
    from edgekit.data.store import load_dataset
    from edgekit.features import extract_with_quality, feature_names

    ds = load_dataset(dataset)
    spec = feature_spec(ds.sample_rate, window, hop, bearing, rpm)
    windows, labels, owner = cut_windows(ds, [Segment(r.id, 0, r.n_samples) for r in ds], spec.window, spec.hop)
    extract_with_quality(windows[:1], spec)  # load the compiled kernels before timing
    started = time.perf_counter()
    values, quality = extract_with_quality(windows, spec)
    seconds = time.perf_counter() - started
    names = feature_names(spec)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, features=values, labels=labels, quality=quality, feature_names=np.array(names),
                            classes=np.array(ds.classes), recording=np.array([r.id for r in ds])[owner],
                            spec=np.array(__import__("json").dumps(spec.to_dict())))
    shown = [n for n in ("time_rms", "time_kurtosis", "time_crest", "spec_centroid", "spec_dominant")
             if n in names]
    per_class = {
        c: {n: float(values[labels == i, names.index(n)].mean()) for n in shown}
        for i, c in enumerate(ds.classes) if np.any(labels == i)
    }
    summary = {"windows": int(len(values)), "features": len(names), "flagged_windows": int(np.count_nonzero(quality)),
               "seconds": round(seconds, 4), "windows_per_second": round(len(values) / max(seconds, 1e-9)),
               "per_class_mean": per_class, "out": out}
    if fmt == "json":
        echo_json(summary)
        return
    click.echo(f"{summary['windows']} windows x {summary['features']} features in {seconds:.3f} s "
               f"({summary['windows_per_second']:,} windows/s); "
               f"{summary['flagged_windows']} windows flagged by quality checks")
    echo_table([(c, *(f"{v[n]:.4g}" for n in shown)) for c, v in per_class.items()], ["class", *shown])
    if out:
        click.echo(f"wrote {out}")
