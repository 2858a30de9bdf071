"""``edgekit bench``: what each artifact of a bundle costs on this machine, and how well it does."""

from __future__ import annotations

import click

from edgekit.bench import DEFAULT_BATCH, DEFAULT_MAX_WINDOWS, DEFAULT_SECONDS


@click.command("bench")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(exists=True))
@click.option("--dataset", type=click.Path(exists=True, file_okay=False),
              help="An edgekit dataset folder at the model's sample rate: adds accuracy per artifact.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True,
              help="md for people, json for programs.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Also write bench.json, bench.md and bench.png into this folder.")
@click.option("--engine", type=click.Choice(["onnxruntime", "litert"]), help="Only artifacts for this engine.")
@click.option("--artifact", "artifacts", multiple=True, help="Only this artifact file (repeatable).")
@click.option("--batch", type=click.IntRange(min=1), default=DEFAULT_BATCH, show_default=True,
              help="Batch size for throughput.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_SECONDS,
              show_default=True, help="Seconds of signal for the end-to-end run of the runtime.")
@click.option("--max-windows", type=click.IntRange(min=1), default=DEFAULT_MAX_WINDOWS, show_default=True,
              help="At most this many dataset windows for accuracy, spread evenly over the dataset.")
def bench(bundle_path, dataset, fmt, out, engine, artifacts, batch, seconds, max_windows) -> None:
    """Benchmark every artifact of BUNDLE that this machine can run: batch-1 latency p50/p99, throughput,
    size, accuracy (with --dataset), feature extraction rate, and, from a fresh runtime process pinned to one
    core, cold start, peak RSS and real-time factor. Artifacts for engines this machine lacks are listed, not run.

    Figures are measured on this machine as it is: close other work for stable numbers.
    """
    from edgekit.bench.measure import benchmark_bundle
    from edgekit.bench.report import markdown, to_json, write_report

    result = benchmark_bundle(bundle_path, dataset=dataset, engine=engine, artifacts=artifacts or None,
                              batch=batch, seconds=seconds, max_windows=max_windows,
                              progress=lambda message: click.echo(f"- {message}", err=True))
    if out:
        for path in write_report(result, out):
            click.echo(f"wrote {path}", err=True)
    click.echo(to_json(result) if fmt == "json" else markdown(result), nl=False)
