"""``edgekit data``: make, import, inspect and plot datasets."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.output import echo_json, echo_table, format_option
from edgekit.data.store import load_dataset, read_card, save_dataset
from edgekit.errors import DataError

out_option = click.option("--out", "out", required=True, type=click.Path(file_okay=False),
                          help="Folder to write the dataset to (created; must be empty or an edgekit dataset).")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing dataset in --out.")


def _int_list(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DataError(f"{what} must be integers separated by commas, e.g. 0,1,2,3; got {text!r}") from None


def _saved(dataset, out: str, overwrite: bool) -> None:
    save_dataset(dataset, out, overwrite=overwrite)
    summary = dataset.summary()
    click.echo(f"wrote {summary['recordings']} recordings, {len(summary['classes'])} classes, "
               f"{summary['seconds']:.1f} s at {summary['sample_rate']:g} Hz to {out}")
    click.echo(f"version {summary['version']}")


@click.group()
def data() -> None:
    """Make, import and inspect datasets."""


@data.command()
@click.option("--out", type=click.Path(file_okay=False), help="Folder to write the dataset to.")
@click.option("--preset", default="motor", show_default=True, help="Machine preset (see --list-presets).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed; the same seed gives the same data.")
@click.option("--recordings-per-class", default=4, show_default=True, type=click.IntRange(1),
              help="Recordings per class, spread over the preset's loads.")
@click.option("--duration", type=click.FloatRange(min=0.1), help="Seconds per recording [default: the preset's].")
@click.option("--scenario", help="Emit a drift scenario (one long recording) instead of a labelled dataset.")
@click.option("--list-presets", is_flag=True, help="List the presets and scenarios, then exit.")
@overwrite_option
def synth(out, preset, seed, recordings_per_class, duration, scenario, list_presets, overwrite) -> None:
    """Generate a physics-based synthetic vibration dataset.

    Shaft faults (imbalance, misalignment, looseness) as harmonics of the running speed; bearing faults as
    impulse trains at the defect frequencies of the preset's bearing, each ringing a structural resonance;
    noise and a sensor model on top.
    """
    from edgekit.data import presets, scenarios, synth as generator

    if list_presets:
        echo_table([(name, f"{p.sample_rate:g}", f"{p.rpm_nominal:g}", ", ".join(map(str, p.loads)),
                     f"{p.bearing.n_balls} balls", ", ".join(f"{r.freq_hz:g}" for r in p.resonances))
                    for name, p in presets.PRESETS.items()],
                   ["preset", "sample rate Hz", "rpm at load 0", "loads", "bearing", "resonances Hz"])
        click.echo()
        echo_table(list(scenarios.SCENARIOS.items()), ["scenario", "what changes"])
        return
    if not out:
        raise DataError("missing --out: name the folder to write the dataset to")
    if scenario:
        dataset = scenarios.generate_scenario(scenario, preset=preset, seed=seed,
                                              **({"duration_s": duration} if duration else {}))
    else:
        dataset = generator.generate_dataset(preset=preset, seed=seed, recordings_per_class=recordings_per_class,
                                             duration_s=duration)
    _saved(dataset, out, overwrite)


@data.group("import")
def import_() -> None:
    """Import recordings from public datasets or your own files."""


@import_.command("cwru")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@out_option
@click.option("--loads", default="0,1,2,3", show_default=True, help="Motor loads in HP to keep, e.g. 0 or 0,1.")
@click.option("--exclude", default="", help="Classes to leave out, e.g. normal.")
@click.option("--channel", type=click.Choice(["de", "fe"]), default="de", show_default=True,
              help="Drive-end or fan-end accelerometer.")
@overwrite_option
def import_cwru_command(source, out, loads, exclude, channel, overwrite) -> None:
    """Import the CWRU Bearing Data Center .mat files in SOURCE (12 kHz drive-end set + normal baseline)."""
    from edgekit.data.importers.cwru import import_cwru

    def progress(files):
        with click.progressbar(files, label="reading CWRU files", file=click.get_text_stream("stderr")) as bar:
            yield from bar

    dataset = import_cwru(source, loads=_int_list(loads, "--loads"),
                          exclude=[c.strip() for c in exclude.split(",") if c.strip()],
                          channel=channel, progress=progress)
    _saved(dataset, out, overwrite)


def _file_import_command(kind: str):
    @click.argument("source", type=click.Path(exists=True))
    @out_option
    @click.option("--sample-rate", type=float, help="Sample rate in Hz (required for csv/npy; resamples wav).")
    @click.option("--label", help="Label for files not in a label sub-folder.")
    @click.option("--condition", "conditions", multiple=True, metavar="KEY=VALUE",
                  help="Operating condition stored with every recording, e.g. load=2 (repeatable).")
    @click.option("--column", default="0", show_default=True, help="Column (index, or name for csv) to read.")
    @overwrite_option
    def command(source, out, sample_rate, label, conditions, column, overwrite) -> None:
        from edgekit.data.importers.files import import_files

        parsed = {}
        for item in conditions:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise DataError(f"--condition takes KEY=VALUE, got {item!r}")
            parsed[key] = _number_or_text(value)
        dataset = import_files(kind, source, sample_rate=sample_rate, label=label, conditions=parsed,
                               column=int(column) if column.isdigit() else column)
        _saved(dataset, out, overwrite)

    command.__doc__ = (f"Import {kind.upper()} recordings from SOURCE (a file, or a folder with one sub-folder "
                       "per label).")
    return import_.command(kind)(command)


def _number_or_text(value: str):
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


for _kind in ("csv", "wav", "npy"):
    _file_import_command(_kind)


@data.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--verify", is_flag=True, help="Re-hash every recording against the card.")
@format_option
def info(dataset, verify, fmt) -> None:
    """Show a dataset's classes, conditions, size and version."""
    loaded = load_dataset(dataset, verify=verify)
    summary = loaded.summary()
    if verify and summary["version"] != read_card(dataset).get("version"):
        raise DataError(f"{dataset}: labels or conditions were edited after import; the version in dataset.json "
                        "no longer matches. Re-import the dataset")
    if fmt == "json":
        echo_json(summary)
        return
    click.echo(f"{summary['name']}: {summary['recordings']} recordings, {summary['seconds']:.1f} s "
               f"at {summary['sample_rate']:g} Hz")
    click.echo(f"version    {summary['version']}")
    for key, values in summary["conditions"].items():
        click.echo(f"{key:<10} {', '.join(map(str, values))}")
    click.echo()
    echo_table([(c, v["recordings"], f"{v['seconds']:.1f}") for c, v in summary["per_class"].items()],
               ["class", "recordings", "seconds"])
    if verify:
        click.echo("\nall recordings match their sha256")


@data.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--nfft", default=2048, show_default=True, type=click.IntRange(64), help="FFT length per segment.")
def plot(dataset, out, nfft) -> None:
    """Plot the mean spectrum and an example waveform of every class."""
    from edgekit.data.plots import plot_class_spectra

    plot_class_spectra(load_dataset(dataset), Path(out), nfft=nfft)
    click.echo(f"wrote {out}")
