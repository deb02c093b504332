"""The `simsearch` command line.

Start-up is kept to typer, rich, NumPy and the cheap simsearch modules: each command
imports the stages it needs (index, queries, plots, evaluation) in its body, so ``--help``,
``info`` and a query of a stored beat never import TensorFlow, SciPy or wfdb, and bad
input (a missing record, a malformed header, an out-of-range ``-k``, an unknown class) is
refused before anything heavy loads.

Every bad input, typer's own usage errors included, ends in one ``error: ...`` line on
stderr and exit code 2 (:func:`main`).
"""

from __future__ import annotations

import enum
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from .aami import AAMI_CLASSES, ALL_RECORDS, DS1, DS2, SYMBOL_TO_AAMI
from .errors import AnnotationError, ParameterError, RecordNotFoundError, SimsearchError
from .label.expert import gather_labels
from .model.leads import DEFAULT_LEADS, LEAD_CHOICES
from .model.training import TrainingConfig
from .signal.records import check_record, data_dir_from, read_annotations, record_list, record_name

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Similarity search over ECG heartbeats: build an index, query it, label records.")
out = Console(width=None if sys.stdout.isatty() else 160)  # wide tables stay readable in logs


DEBUG_ENV = "SIMSEARCH_DEBUG"
"""Set (to anything) to see the traceback of an internal error instead of its one line."""


class Task(str, enum.Enum):
    """What ``simsearch evaluate`` measures."""

    classification = "classification"
    detection = "detection"
    adaptive = "adaptive"
    end_to_end = "end-to-end"
    noise = "noise"


class IndexType(str, enum.Enum):
    """The vector index ``simsearch build`` makes (see simsearch/store/vectors.py)."""

    auto = "auto"
    flat = "flat"
    hnsw = "hnsw"
    ivf = "ivf"
    ivfpq = "ivfpq"


class Engine(str, enum.Enum):
    """Where ``simsearch build`` embeds records."""

    local = "local"
    ray = "ray"


Leads = enum.Enum("Leads", {choice: choice for choice in LEAD_CHOICES}, type=str)
Leads.__doc__ = """What ``simsearch build`` stores of each beat (see simsearch/model/leads.py)."""


class BeatPositions(str, enum.Enum):
    """Where ``simsearch annotate`` takes beats from."""

    detect = "detect"
    reference = "reference"


DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Directory of WFDB records "
                                                 "[default: $SIMSEARCH_DATA]", show_default=False)]
Records = Annotated[str, typer.Option("--records", help="all, DS1, DS2 or a comma list of names/paths")]
EncoderPath = Annotated[Path | None, typer.Option("--encoder", help="Encoder .keras [default: the packaged model "
                                                     "for build; the index's own for queries]", show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="One JSON object on stdout instead of tables")]
Lead = Annotated[str | None, typer.Option("--lead", help="Lead name [default: MLII, else II, else the first]",
                                             show_default=False)]


def _print_version(value: bool) -> None:
    if value:
        from . import __version__  # read from the package metadata only when asked for

        print(f"simsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print the version and exit")] = False) -> None:
    """Similarity search over ECG heartbeats: build an index, query it, label records."""


@app.command()
def build(index_dir: Path, data_dir: DataDir = None, records: Records = "all", encoder: EncoderPath = None,
          lead: Lead = None,
          catalog_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the catalog "
                                                             "[default: SQLite inside INDEX_DIR]")] = None,
          index_type: Annotated[IndexType, typer.Option("--index", help="Vector index: exact flat; hnsw; ivf; ivfpq; "
                                                   "auto (flat up to 200,000 beats, ivf above)")] = IndexType.auto,
          engine: Annotated[Engine, typer.Option("--engine", help="Embed records here, one after the other, or on "
                                                 "Ray")] = Engine.local,
          ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster for --engine ray "
                                                             "[default: a local instance]", show_default=False)] = None,
          milvus_uri: Annotated[str | None, typer.Option("--milvus-uri", help="Keep the vectors in Milvus: a .db file "
                                                            "(Milvus Lite) or http://host:19530; needs --catalog-url",
                                                            show_default=False)] = None,
          leads: Annotated[Leads, typer.Option("--leads", help="Each beat in one lead (--lead), or in both: that lead "
                                               "and the record's other lead (V1 in most MIT-BIH records) side by side; "
                                               "every record then needs two leads. auto: both where every record "
                                               "has two")] = Leads(DEFAULT_LEADS),
          as_json: Json = False) -> None:
    """Build an index of labeled beats from WFDB records (replaces INDEX_DIR atomically)."""
    names = _checked_records(records, data_dir, lead)
    _check_file(encoder, "encoder model")
    _check_output_dir(index_dir, "index directory")
    if milvus_uri is not None and catalog_url is None:
        raise ParameterError("--milvus-uri needs --catalog-url (PostgreSQL, or an SQLite file): the vectors and the "
                             "catalog live outside INDEX_DIR together")
    from .store.index import BeatIndex

    runner = None
    if engine is Engine.ray:
        from .model.parallel import RayEngine

        runner = RayEngine(ray_address)

    start = time.perf_counter()
    new_dirs = [p for p in index_dir.absolute().parents if not p.exists()]  # what a build creates around the index
    try:
        index = BeatIndex.build(index_dir, names, data_dir, encoder=encoder, catalog_url=catalog_url, lead=lead,
                                progress=not as_json, index_type=index_type.value, milvus_uri=milvus_uri, engine=runner,
                                leads=leads.value)
    except BaseException:
        for directory in new_dirs:  # a failed build leaves no trace: no empty parent directories either
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise
    report = {"index": str(index_dir), "wall_s": round(time.perf_counter() - start, 2), **index.manifest["build"],
              "by_class": index.catalog.counts()["by_class"], "encoder": index.fingerprint, "leads": index.leads,
              "vectors": index.manifest["vectors"]}
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"Built {index_dir}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("records", "beats", "wall_s", "read_s", "filter_s", "embed_s", "index_s", "embed_beats_per_s"):
        value = report[key]
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    table.add_row("beats per class", ", ".join(f"{k} {v}" for k, v in report["by_class"].items()))
    table.add_row("encoder", report["encoder"])
    table.add_row("leads", report["leads"])
    table.add_row("vectors", ", ".join(f"{k} {v}" for k, v in report["vectors"].items()
                                       if k in ("type", "nlist", "nprobe", "efSearch", "uri", "collection")))
    out.print(table)


@app.command()
def add(index_dir: Path, data_dir: DataDir = None, records: Records = ..., lead: Lead = None,
        as_json: Json = False) -> None:
    """Add records to an index; a record already there is replaced, never duplicated."""
    names = _checked_records(records, data_dir, lead)
    from .store.index import BeatIndex

    current = BeatIndex.open(index_dir)  # its manifest, read before any signal or TensorFlow
    current.close()
    if current.leads == "both":
        from .model.leads import choose_leads

        choose_leads("both", names, data_dir, lead)  # a record of one lead is refused from its header
    with BeatIndex.updating(index_dir) as index:
        stats = index.add_records(names, data_dir, lead=lead, progress=not as_json)
    report = {"index": str(index_dir), "records": stats.records, "beats": stats.beats}
    print(json.dumps(report)) if as_json else out.print(f"added {stats.beats} beats from {stats.records} record(s)")


@app.command()
def query(index_dir: Path,
          record: Annotated[str, typer.Option("--record", help="Record name in the index, or a WFDB path/name",
                                              show_default=False)],
          sample: Annotated[int, typer.Option("--sample", min=0, help="Sample of the beat, at the record's own "
                                              "rate (the nearest beat is taken)", show_default=False)],
          k: Annotated[int, typer.Option("-k", min=1, help="Neighbors to return")] = 10,
          exclude_record: Annotated[bool, typer.Option("--exclude-record",
                                                       help="Answer only from other records (patients)")] = False,
          classes: Annotated[str | None, typer.Option("--classes", help="Keep only these AAMI classes, e.g. S,V",
                                                         show_default=False)] = None,
          data_dir: DataDir = None, lead: Lead = None, encoder: EncoderPath = None,
          plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of the beat over its neighbors",
                                                       show_default=False)] = None,
          as_json: Json = False) -> None:
    """Nearest labeled beats of one beat, and their kNN vote."""
    wanted = _class_list(classes)
    name = record_name(record)
    if data_dir is not None:
        data_dir_from(data_dir)  # a wrong --data-dir is refused even when the record is stored
    _check_file(encoder, "encoder model")
    _check_output_file(plot, "--plot")
    from .label.query import MAX_K, query_beat
    from .store.index import BeatIndex

    _check_k(k, MAX_K)
    index = BeatIndex.open(index_dir, encoder)
    if index.catalog.record(name) is None:
        check_record(record, data_dir, lead)  # not stored: it must be readable, checked before TensorFlow loads
    result = query_beat(index, record, sample, k, exclude_record=exclude_record, classes=wanted, data_dir=data_dir,
                        lead=lead)
    if plot is not None:
        from .plots import plot_neighbors

        plot_neighbors(index, result, plot, data_dir=data_dir, query_record=record)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    q = result.query
    out.print(f"query: record {q['record']} sample {q['sample']} ({q['time']:.2f} s, lead {q['lead']}) "
              f"symbol {q['symbol'] or '-'} class {q['aami'] or '-'}"
              + ("; a doubted beat (annotate labels it Q): maybe noise" if q.get("doubted") else ""),
              markup=False, highlight=False)
    table = Table()
    for col in ("#", "record", "sample", "time (s)", "symbol", "AAMI", "distance", "label"):
        table.add_column(col, justify="right" if col in ("#", "sample", "time (s)", "distance") else "left")
    for rank, n in enumerate(result.neighbors, 1):
        table.add_row(str(rank), n.record, str(n.sample), f"{n.time:.2f}", n.symbol or "-", n.aami or "-",
                      f"{n.distance:.4f}", n.label_source)
    out.print(table)
    scores = ", ".join(f"{c} {s:.2f}" for c, s in result.vote.scores.items() if s > 0)
    out.print(f"vote: [bold]{result.vote.label}[/bold] (confidence {result.vote.confidence:.2f}; {scores})")
    if plot is not None:
        out.print(f"plot: {plot}", markup=False, highlight=False)


@app.command()
def info(index_dir: Path, as_json: Json = False) -> None:
    """What an index holds: records, beats per class and label source, encoder, build figures."""
    from .store.index import BeatIndex

    index = BeatIndex.open(index_dir)
    details = index.info()
    if as_json:
        print(json.dumps(details))
        return
    table = Table(title=str(index_dir), show_header=False)
    table.add_column("what")
    table.add_column("value")
    counts = details["catalog"]
    table.add_row("records", f"{counts['records']}: {' '.join(details['records'])}")
    table.add_row("beats", str(counts["beats"]))
    table.add_row("by class", ", ".join(f"{k} {v}" for k, v in counts["by_class"].items()))
    table.add_row("by label source", ", ".join(f"{k} {v}" for k, v in counts["by_label_source"].items()))
    table.add_row("encoder", f"{details['encoder']['fingerprint']} ({details['encoder']['dim']} dims)")
    both = details.get("leads") == "both"
    table.add_row("leads", f"both, the second weighted {details['second_lead_weight']:g}" if both else "one")
    table.add_row("created", details["created"])
    table.add_row("catalog", details["catalog_url"] or "catalog.sqlite (in the index directory)")
    if "build" in details:
        b = details["build"]
        table.add_row("build", f"read {b['read_s']:.1f} s, filter {b['filter_s']:.1f} s, embed {b['embed_s']:.1f} s "
                               f"({b['embed_beats_per_s']:.0f} beats/s), index {b['index_s']:.1f} s")
    out.print(table)


@app.command()
def train(out_path: Annotated[Path, typer.Option("--out", help="Where to write the .keras encoder",
                                                 show_default=False)],
          data_dir: DataDir = None, records: Records = "DS1",
          val_records: Annotated[str, typer.Option(help="auto (patient-disjoint split of --records), none, "
                                                        "or a comma list")] = "auto",
          steps: Annotated[int, typer.Option(min=1, help="Training steps (batches)")] = TrainingConfig.steps,
          seed: Annotated[int, typer.Option(help="Seed for weights, sampling and augmentation")] = 0,
          noise_dir: Annotated[Path | None, typer.Option("--noise-dir", help="MIT-BIH Noise Stress Test directory "
                                                         "whose em and ma records give the training records noisy "
                                                         "copies [default: nstdb beside the data directory, where "
                                                         "it is; else none]", show_default=False)] = None,
          as_json: Json = False) -> None:
    """Train the Siamese encoder (triplet loss) on reference-labeled records; never on DS2 by default."""
    if out_path.suffix != ".keras":
        raise ParameterError(f"--out must name a .keras file, not {str(out_path)!r}")
    _check_output_file(out_path, "--out")
    names = _checked_records(records, data_dir, None)
    if val_records == "auto":
        val = None
    elif val_records.strip().lower() == "none":
        val = []
    else:
        val = _checked_records(val_records, data_dir, None)
    config = TrainingConfig(steps=steps, seed=seed)
    noise_path = _training_noise_dir(noise_dir, data_dir, config.noise_records)
    from .evaluation.selection import train_and_save

    report = train_and_save(out_path, names, data_dir, val_records=val, config=config, noise_dir=noise_path,
                            progress=not as_json)
    if as_json:
        print(json.dumps(report))
        return
    noisy = (f"{report['noisy_beats']} of them from noisy copies" if noise_path is not None
             else "no noisy copies: no nstdb directory")
    out.print(f"encoder {report['fingerprint']} written to {out_path} "
              f"(best step {report['best_step']}, validation score {report['best_score']}, "
              f"{report['train_beats']} training beats, {noisy}, {report['train_seconds']:.0f} s)",
              markup=False, highlight=False)


@app.command()
def annotate(index_dir: Path,
             record_path: Annotated[str, typer.Argument(help="WFDB record: a path, or a name in --data-dir",
                                                        show_default=False)],
             out_dir: Annotated[Path, typer.Option("--out", help="Directory for the annotation files",
                                                   show_default=False)],
             ext: Annotated[str, typer.Option("--ext", help="Extension of the WFDB annotation file (never atr)")]
             = "pred",
             beats: Annotated[BeatPositions, typer.Option("--beats", help="Beat positions: detect (QRS detector) or "
                                                          "reference (positions of RECORD.atr; its labels are "
                                                          "ignored)")] = BeatPositions.detect,
             labels: Annotated[Path | None, typer.Option("--labels", help="CSV of expert labels, rows sample,label "
                                                            "(AAMI class or MIT-BIH symbol; header optional)",
                                                            show_default=False)] = None,
             suggest: Annotated[int, typer.Option("--suggest", min=0, help="Suggest N beats to label next, written "
                                                  "to OUT/<record>.suggest.csv for --labels")] = 0,
             store: Annotated[bool, typer.Option("--add-to-index", help="Add the labeled record to the index "
                                                 "(atomically)")] = False,
             plot: Annotated[bool, typer.Option("--plot", help="Write OUT/<record>.strip.png (first 20 s)")] = False,
             k: Annotated[int, typer.Option("-k", min=1, help="Neighbors in the global vote (at least the index's own "
                                                "vote k)")] = 10,
             data_dir: DataDir = None, lead: Lead = None, as_json: Json = False) -> None:
    """Label every beat of a record from the index, adapted to the patient with expert labels."""
    path = check_record(record_path, data_dir, lead)  # bad input fails here, before the model loads
    _check_output_dir(out_dir, "--out")
    # answers of earlier rounds (OUT/<record>.labels.csv) are kept, this round's added
    expert = gather_labels(labels, out_dir, record_name(path)) if labels is not None else None
    from .label.annotate import (
        LABEL_SOURCES,
        StageLog,
        add_to_index,
        annotate_record,
        check_beat_source,
        suggest_beats,
        summary,
    )
    from .label.export import check_extension, write_annotation, write_labels, write_suggestions
    from .label.query import MAX_K
    from .store.index import BeatIndex

    _check_k(k, MAX_K)
    _check_k(suggest, MAX_K, "--suggest", low=0)
    ext, beat_source = check_extension(ext), check_beat_source(beats.value)
    index = BeatIndex.open(index_dir)
    log = StageLog(enabled=not as_json)  # one line per stage on stderr when piped, a bar on a terminal
    try:
        annotation = annotate_record(index, path, data_dir=data_dir, lead=lead, beats=beat_source,
                                     expert_labels=expert, k=k, log=log)
        with log.stage("write") as info:
            files = {kind: str(p) for kind, p in write_annotation(annotation, out_dir, ext).items()}
            if expert is not None:
                files["labels"] = str(write_labels(expert, out_dir, annotation.record))
            suggested = suggest_beats(annotation, suggest) if suggest else []
            if suggest:
                files["suggest"] = str(write_suggestions(annotation, suggested, out_dir))
            if plot:
                from .plots import plot_strip

                files["plot"] = str(plot_strip(annotation, out_dir / f"{annotation.record}.strip.png"))
            info["detail"] = f"{len(files)} files"
    finally:
        log.close()
    annotation.timings = log.report()
    index.close()
    added = None
    if store:
        with BeatIndex.updating(index_dir, index.encoder) as target:
            added = int(add_to_index(target, annotation).size)
    report = summary(annotation)
    rows = {int(s): i for i, s in enumerate(annotation.samples)}
    suggestions = [{"sample": int(s), "time": round(float(annotation.times[rows[int(s)]]), 3),
                    "label": str(annotation.labels[rows[int(s)]]),
                    "confidence": round(float(annotation.confidence[rows[int(s)]]), 4)} for s in suggested]
    if as_json:
        print(json.dumps({**report, "files": files, "suggestions": suggestions, "added_to_index": added,
                          "timings": annotation.timings}))
        return
    table = Table(title=f"{annotation.record}: {report['beats']} beats ({beat_source} positions, "
                        f"lead {annotation.lead})")
    for col in ("class", "beats", *LABEL_SOURCES, f"confidence < {report['low_confidence']['threshold']}"):
        table.add_column(col, justify="left" if col == "class" else "right")
    low = annotation.confidence < report["low_confidence"]["threshold"]
    for cls, count in report["by_class"].items():
        mine = annotation.labels == cls
        table.add_row(cls, str(count), *(str(int((mine & (annotation.label_source == source)).sum()))
                                         for source in LABEL_SOURCES), str(int((mine & low).sum())))
    out.print(table)
    _print_ectopy(report["ectopy"], annotation.fs)
    if report["gaps"]:
        seconds = sum(stop - start for start, stop in report["gaps"]) / annotation.fs
        out.print(f"invalid signal: {len(report['gaps'])} gap(s), {seconds:.1f} s, bridged by straight lines; "
                  "beats whose windows reach into them are labeled Q (doubted)")
    low_samples = report["low_confidence"]["samples"]
    if low_samples:
        more = f" ... (+{len(low_samples) - 10})" if len(low_samples) > 10 else ""
        out.print(f"low-confidence beats (samples): {' '.join(map(str, low_samples[:10]))}{more}")
    if suggestions:
        table = Table(title=f"label these next (then rerun with --labels {files['suggest']})")
        for col in ("#", "sample", "time (s)", "current label", "confidence"):
            table.add_column(col, justify="right")
        for rank, s in enumerate(suggestions, 1):
            table.add_row(str(rank), str(s["sample"]), f"{s['time']:.2f}", s["label"], f"{s['confidence']:.2f}")
        out.print(table)
    for kind, where in files.items():
        out.print(f"{kind}: {where}", markup=False, highlight=False)
    if added is not None:
        out.print(f"added {added} beats of {annotation.record} to {index_dir}", markup=False, highlight=False)


def _clock(sample: int, fs: float) -> str:
    """A sample's time into the recording as h:mm:ss."""
    seconds = int(round(sample / fs))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _print_ectopy(ectopy: dict, fs: float) -> None:
    """The Holter report's part of ``annotate``'s output: ectopic patterns per class, heart rate, pauses."""
    from .label.ectopy import ECTOPIC_CLASSES

    columns = {"beats": "beats", "isolated": "isolated", "couplets": "couplets", "runs": "runs (3+)",
               "longest_run": "longest run", "fastest_run_bpm": "fastest run (bpm)", "bigeminy": "bigeminy",
               "trigeminy": "trigeminy"}
    table = Table(title="ectopy")
    table.add_column("class")
    for title in columns.values():
        table.add_column(title, justify="right")
    for cls in ECTOPIC_CLASSES:
        table.add_row(cls, *("-" if ectopy[cls][key] is None else str(ectopy[cls][key]) for key in columns))
    out.print(table)
    rate, pauses = ectopy["heart_rate"], ectopy["pauses"]
    line = "heart rate: " + ("-" if rate["mean_bpm"] is None else f"mean {rate['mean_bpm']:.0f} bpm")
    if rate["min_bpm"] is not None:
        line += (f", minute means {rate['min_bpm']:.0f} (at {_clock(rate['min_at'], fs)}) to {rate['max_bpm']:.0f} "
                 f"(at {_clock(rate['max_at'], fs)})")
    line += f"; pauses over {pauses['threshold_s']:g} s: {pauses['count']}"
    if pauses["count"]:
        line += f", longest {pauses['longest_s']:.1f} s (ending at {_clock(pauses['longest_at'], fs)})"
    out.print(line, markup=False, highlight=False)


@app.command()
def serve(index_dir: Path,
          host: Annotated[str, typer.Option(help="Address to listen on; any but 127.0.0.1/localhost/::1 needs "
                                                 "--token")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
          data_dir: DataDir = None,
          workspace_dir: Annotated[Path | None, typer.Option("--workspace-dir", help="Where review workspaces are "
                                                                "kept [default: INDEX_DIR.workspaces]",
                                                                show_default=False)] = None,
          token: Annotated[str | None, typer.Option("--token", help="Access token every request must carry "
                                                       "[default: $SIMSEARCH_TOKEN]", show_default=False)] = None
          ) -> None:
    """Serve the HTTP API (docs at /docs) and the review page over an index."""
    from .server.run import check_listen, listening_socket

    check_listen(host, port, token)  # refused before anything loads
    if data_dir is not None:
        data_dir_from(data_dir)
    if workspace_dir is not None:
        _check_output_dir(workspace_dir, "--workspace-dir")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ParameterError(f"serve needs the server's packages ({exc.name}): "
                             "pip install 'simsearch[serve]'") from None
    from .server.run import serve as run_server

    sock = listening_socket(host, port)  # a port already taken is refused before the index loads
    run_server(index_dir, host=host, port=port, data_dir=data_dir, workspace_dir=workspace_dir, token=token,
               sock=sock)


@app.command()
def evaluate(data_dir: DataDir = None, encoder: EncoderPath = None,
             task: Annotated[Task, typer.Option(help="classification (DS1 index, DS2 queries, baselines), detection "
                                                     "(QRS Se/+P on all records), adaptive (expert budgets on DS2), "
                                                     "end-to-end (detected beats, DS2), noise (end to end on "
                                                     "nstdb 118/119 and on the test records with em noise added, "
                                                     "per SNR)")] = Task.classification,
             records: Annotated[str | None, typer.Option("--records", help="Test records: names or paths, "
                                                            "a directory, a RECORDS file [default: DS2; all 48 "
                                                            "for detection]", show_default=False)] = None,
             index_records: Annotated[str | None, typer.Option(
                 "--index-records", help="Records the index is built from (classification, adaptive, end-to-end) "
                                         "[default: DS1; all: the 48 MIT-BIH records, to label another database]",
                 show_default=False)] = None,
             budgets: Annotated[str, typer.Option(help="Expert beats per record (adaptive)")] = "0,5,10,20,50",
             noise_dir: Annotated[Path | None, typer.Option("--noise-dir", help="MIT-BIH Noise Stress Test "
                                                               "records (noise) [default: nstdb beside the data "
                                                               "directory]", show_default=False)] = None,
             snrs: Annotated[str, typer.Option("--snrs", help="SNRs in dB (noise), some of the nstdb's")]
             = "24,18,12,6,0,-6",
             plot: Annotated[Path, typer.Option(help="PNG of the confusion matrix (classification)")] = Path(
                 "confusion.png"),
             leads: Annotated[Leads, typer.Option("--leads", help="What the DS1 index holds of each beat (adaptive, "
                                                  "end-to-end, noise; classification scores both)")
                              ] = Leads(DEFAULT_LEADS),
             as_json: Json = False) -> None:
    """Inter-patient evaluation as AAMI EC57 reports it; never trains or tunes on the test records."""
    task_name = task.value
    budget_list = _whole_numbers(budgets, "--budgets")
    test = record_list(records) if records else list(ALL_RECORDS if task_name == "detection" else DS2)
    if index_records is not None and task_name in ("detection", "noise"):
        raise ParameterError(f"--index-records is for classification, adaptive and end-to-end, not {task_name} "
                             "(detection needs no index; noise builds DS1's without the records it scores)")
    train = record_list(index_records) if index_records is not None else list(DS1)
    train_what = "DS1, the index's records" if index_records is None else "the index's records (--index-records)"
    data_dir_from(data_dir)
    _check_file(encoder, "encoder model")
    if task_name == "classification":
        _check_output_file(plot, "--plot")
    if task_name != "detection":
        from .evaluation.leakage import check_disjoint

        check_disjoint(train, test, train_what)  # by name: a path to an index record is refused too
    if task_name in ("classification", "adaptive", "end-to-end"):  # the noise task's index is its own
        for name in train:
            check_record(name, data_dir)
    for name in test:
        check_record(name, data_dir)
    if task_name == "noise":
        from .evaluation.noise import NSTDB_SOURCES, check_noise_dir, check_snrs

        snr_list = check_snrs(_whole_numbers(snrs, "--snrs", signed=True))
        for name in NSTDB_SOURCES:  # the clean row
            check_record(name, data_dir)
        noise_path = check_noise_dir(_noise_dir(noise_dir, data_dir), snr_list)
    if task_name == "detection":
        from .evaluation.detection import evaluate_detection, summarize_detection

        rows = evaluate_detection(test, data_dir)
        report = {"task": task_name, "records": rows, "total": summarize_detection(rows)}
        return _print_detection(report, as_json)
    from .model.encoder import Encoder

    enc = Encoder.load(encoder)
    if task_name == "classification":
        from .evaluation.classification import evaluate_classification

        report = {"task": task_name, **evaluate_classification(data_dir, enc, train_records=train, test_records=test,
                                                               progress=not as_json)}
        from .plots import plot_confusion

        encoder_row = report["systems"][-1]
        plot_confusion(encoder_row["confusion"], plot, title=f"{encoder_row['system']}: {_index_name(train)}, "
                                                               f"{len(test)} test records")
        report["plot"] = str(plot)
        return _print_classification(report, as_json)
    import tempfile

    from .store.index import BeatIndex

    with tempfile.TemporaryDirectory(prefix="simsearch-eval-") as tmp:
        if task_name == "noise":
            from .evaluation.noise import NOISE_INDEX_RECORDS, evaluate_noise

            index = BeatIndex.build(Path(tmp) / "ds1", NOISE_INDEX_RECORDS, data_dir, encoder=enc,
                                    progress=not as_json, leads=leads.value)
            report = {"task": task_name, "index_records": list(NOISE_INDEX_RECORDS), "encoder": enc.fingerprint,
                      "leads": index.leads,
                      **evaluate_noise(index, data_dir, noise_path, records=test, snrs=snr_list,
                                       progress=not as_json)}
            index.close()
            return _print_noise(report, as_json)
        index = BeatIndex.build(Path(tmp) / "index", train, data_dir, encoder=enc, progress=not as_json,
                                leads=leads.value)
        if task_name == "adaptive":
            from .evaluation.adaptive import evaluate_adaptive

            report = {"task": task_name, "leads": index.leads, "index_records": train,
                      **evaluate_adaptive(index, test, budget_list, data_dir, progress=not as_json)}
            rows = {name: b for name, b in report["budgets"].items()}
        else:
            from .evaluation.end_to_end import evaluate_end_to_end

            report = {"task": task_name, "leads": index.leads, "index_records": train,
                      **evaluate_end_to_end(index, test, data_dir, progress=not as_json)}
            rows = {"end-to-end": report}
        index.close()
    if as_json:
        print(json.dumps(report))
        return
    first = "expert labels per record" if task_name == "adaptive" else "system"
    held = "both leads" if report["leads"] == "both" else "one lead"
    out.print(_ec57_table(f"{task_name}: {len(test)} records, {_index_name(train)} ({held})", rows, first))
    # per budget, S and V only (the classes the expert is asked for; N stays near 99 %): narrower tables
    columns = [(f"{name} labels", r) for name, r in rows.items() if name != "global"] \
        if task_name == "adaptive" else list(rows.items())
    for table in _grouped_tables(columns, ("S", "V") if task_name == "adaptive" else ("N", "S", "V")):
        _print_whole(table)
    if "qrs" in report:
        q = report["qrs"]
        out.print(f"QRS detection: Se {_fmt(q['se'])} %, +P {_fmt(q['ppv'])} % ({q['tp']} found, {q['fn']} missed, "
                  f"{q['fp']} extra)")
    if "runs" in report:
        out.print(_runs_table(report["runs"]))


def _runs_table(runs: dict) -> Table:
    """EC57's run detection: Se / +P per ectopic class and run category, with the reference's runs."""
    categories = list(next(iter(runs.values())))
    table = Table(title="runs (EC57 run by run: Se / +P, reference runs)")
    table.add_column("class")
    for category in categories:
        table.add_column(category, justify="right")
    for cls, row in runs.items():
        table.add_row(cls, *(f"{_fmt(row[c]['se'], 1)} / {_fmt(row[c]['ppv'], 1)} ({row[c]['n']})" for c in categories))
    return table


def _index_name(records: list[str]) -> str:
    """How a table names the index it scored with: ``DS1 index``, or its number of records."""
    return "DS1 index" if list(records) == list(DS1) else f"index of {len(records)} records"


def _ec57_table(title: str, rows: dict, first_column: str = "system") -> Table:
    """One row per system/budget: Se and +P per class, FPR of S and V, accuracy."""
    table = Table(title=title)
    table.add_column(first_column)
    for c in ("N", "S", "V", "F"):
        table.add_column(f"{c} Se", justify="right")
        table.add_column(f"{c} +P", justify="right")
    table.add_column("S FPR", justify="right")
    table.add_column("V FPR", justify="right")
    table.add_column("Acc", justify="right")
    precision = ("N", "S", "V", "macro_NSV") if any("precision_at_10" in r for r in rows.values()) else ()
    for key in precision:
        table.add_column(f"P@10 {'NSV' if key == 'macro_NSV' else key}", justify="right")
    for name, r in rows.items():
        cells = [_fmt(r["classes"][c][key]) for c in ("N", "S", "V", "F") for key in ("se", "ppv")]
        cells += [_fmt(r["classes"]["S"]["fpr"]), _fmt(r["classes"]["V"]["fpr"]), _fmt(r["accuracy"])]
        cells += [_fmt(r["precision_at_10"][key], 3) for key in precision]
        table.add_row(name, *cells)
    return table


def _grouped_table(columns: list[tuple[str, dict]], title: str, first_column: str,
                   classes: tuple[str, ...] = ("N", "S", "V")) -> Table:
    """One row per group of test beats (a record, a rhythm), and per column (a system, an expert budget: its
    name and its figures per group) the Se/+P of ``classes`` (whole percents), so that no record or rhythm
    hides in the pooled figures; the last column counts each one's S calls of beats that are not S, in their
    order (``false_s``, :func:`~simsearch.evaluation.classification.record_figures`): where the false SVEBs go
    as the expert answers, or from one system to the next."""
    names = [name for name, _ in columns]
    table = Table(title=f"{title}: Se/+P % (- where there is no such beat, or none was called it)",
                  caption=f"false S: the beats {' / '.join(names)} called S that are not S")
    table.add_column(first_column)
    for what in ("beats", "n N", "n S", "n V"):
        table.add_column(what, justify="right")
    for name, _ in columns:
        for c in classes:
            table.add_column(f"{name} {c}", justify="right")
    false_s = {group: "/".join(str(figures[group]["false_s"]) for _, figures in columns) for group in columns[0][1]}
    # never cut short: the other columns wrap their headers instead
    table.add_column("false S", justify="right", no_wrap=True, min_width=max(map(len, false_s.values()), default=0))
    for group, first in columns[0][1].items():
        cells = [str(first["beats"]), *(str(first["classes"][c]["n"]) for c in ("N", "S", "V"))]
        for _, figures in columns:
            cells += [f"{_fmt(figures[group]['classes'][c]['se'], 0)}/{_fmt(figures[group]['classes'][c]['ppv'], 0)}"
                      for c in classes]
        table.add_row(group, *cells, false_s[group])
    return table


def _print_whole(table: Table) -> None:
    """Print ``table`` with no cell cut short. Piped (a log, a file), it is as wide as it needs, past the 160
    columns the rest of the output keeps: a per-record table of seven SNRs or five budgets needs about 200, and
    at 160 rich cut its cells to "100…". A terminal keeps its own width."""
    if out.is_terminal:
        out.print(table)
        return
    kept = out.width
    out.width = max(kept, Measurement.get(out, out.options.update_width(100_000), table).maximum)
    try:
        out.print(table)
    finally:
        out.width = kept


def _grouped_tables(columns: list[tuple[str, dict]], classes: tuple[str, ...] = ("N", "S", "V")) -> list[Table]:
    """The per-record table, and the per-rhythm one where the test records have rhythm annotations, of columns
    (name, figures) each holding ``per_record`` and, maybe, ``per_rhythm``."""
    tables = [_grouped_table([(name, r["per_record"]) for name, r in columns], "per record", "record", classes)]
    if "per_rhythm" in columns[0][1]:
        tables.append(_grouped_table([(name, r["per_rhythm"]) for name, r in columns],
                                     "per reference rhythm (the records' rhythm annotations)", "rhythm", classes))
    return tables


def _print_classification(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    p = report["protocol"]
    rows = {r["system"]: r for r in report["systems"]}
    out.print(_ec57_table(f"{_index_name(p['train_records'])} ({p['train_beats']} beats) -> "
                          f"{len(p['test_records'])} test records "
                          f"({p['test_beats']} beats), k={p['k']}, prior alpha={p['prior_alpha']}, "
                          f"each record's votes {p['patient_strength']:g} of the way to its own class mix", rows))
    without = next((key for key in report["systems"][0] if key.startswith("without_")), None)
    if without is not None:
        left_out = without.removeprefix("without_")
        n_left_out = sum(map(sum, report["systems"][0]["per_record_confusion"][left_out]))
        out.print(_ec57_table(f"the same without record {left_out} (its {n_left_out} beats left out)",
                              {r["system"]: r[without] for r in report["systems"]}))
    for table in _grouped_tables([(r["system"], r) for r in report["systems"]]):
        _print_whole(table)
    encoder_row = report["systems"][-1]
    matrix = Table(title=f"confusion ({encoder_row['system']}): rows reference, columns predicted")
    matrix.add_column("")
    for c in p["classes"]:
        matrix.add_column(c, justify="right")
    for c, counts in zip(p["classes"], encoder_row["confusion"]):
        matrix.add_row(c, *map(str, counts))
    out.print(matrix)
    per_class = Table(title="precision@1 / @10 per class of the neighbors shown, the vote's class first "
                            "(@10 of the nearest ten in brackets)")
    per_class.add_column("system")
    for c in ("N", "S", "V", "F"):
        per_class.add_column(c, justify="right")
    for r in report["systems"]:
        per_class.add_row(r["system"], *(f"{_fmt(r['precision_at_1'][c], 3)} / {_fmt(r['precision_at_10'][c], 3)} "
                                         f"({_fmt(r['precision_at_10_nearest'][c], 3)})" for c in ("N", "S", "V", "F")))
    out.print(per_class)
    q = encoder_row["q_beats"]
    out.print(f"Q beats (reported apart, not scored): {q['n']}, called "
              + ", ".join(f"{c} {n}" for c, n in q["predicted"].items() if n))
    out.print(f"confusion matrix plot: {report['plot']}; {report['seconds']:.0f} s")


def _print_noise(report: dict, as_json: bool) -> None:
    """One table per noisy set (nstdb, then the test records with noise added): a row per SNR
    after the clean one, QRS and N/S/V Se/+P; then the set's per-record and per-rhythm tables, S and V Se/+P per
    SNR, so that no record hides in the pooled figures."""
    if as_json:
        print(json.dumps(report))
        return
    sources = ", ".join(report["nstdb"]["sources"])
    added = f"test records with {report['noise_record']} noise"
    sets = {"nstdb": (f"nstdb {sources}", f"nstdb {sources} (em noise added by nst in alternate 2-min stretches "
                                          "from minute 5)"),
            "added": (added, f"{len(report.get('added', {}).get('records', []))} {added} added over the whole record")}
    for key, (name, title) in sets.items():
        if key not in report:
            continue
        table = Table(title=f"{title}: detected beats, labeled by an index of DS1 without {sources}, matched to "
                            f"the reference within 150 ms")
        table.add_column("SNR dB")
        for col in ("QRS Se", "QRS +P", "N Se", "N +P", "S Se", "S +P", "V Se", "V +P", "Acc"):
            table.add_column(col, justify="right")
        for row, r in report[key]["rows"].items():
            table.add_row(row, _fmt(r["qrs"]["se"]), _fmt(r["qrs"]["ppv"]),
                          *(_fmt(r["classes"][c][k]) for c in ("N", "S", "V") for k in ("se", "ppv")),
                          _fmt(r["accuracy"]))
        out.print(table)
        for grouped in _grouped_tables([(f"{row} dB" if row != "clean" else row, r)
                                        for row, r in report[key]["rows"].items()], ("S", "V")):
            grouped.title = f"{name}, {grouped.title}"
            _print_whole(grouped)


def _training_noise_dir(noise_dir: Path | None, data_dir: Path | None, noise_records: Sequence[str]) -> Path | None:
    """``--noise-dir`` of ``train`` (refused unless it holds ``noise_records``, those training adds), else
    ``nstdb`` beside the data directory where it holds them, else None (training without noisy copies)."""
    from .evaluation.noise import check_noise_dir
    from .signal.noise import nstdb_beside

    if noise_dir is not None:
        return check_noise_dir(noise_dir, (), noise_records)
    base = data_dir_from(data_dir)
    beside = nstdb_beside(base) if base is not None else None
    if beside is None or not all((beside / f"{name}.hea").is_file() for name in noise_records):
        return None
    return beside


def _noise_dir(noise_dir: Path | None, data_dir: Path | None) -> Path:
    """``--noise-dir``, else ``nstdb`` beside the data directory (refused later if missing)."""
    from .signal.noise import nstdb_beside

    if noise_dir is not None:
        return noise_dir
    base = data_dir_from(data_dir)
    if base is None:
        raise ParameterError("--noise-dir is needed: there is no data directory to find nstdb beside "
                             "(pass --data-dir or set SIMSEARCH_DATA)")
    return nstdb_beside(base)


def _print_detection(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title="QRS detection (150 ms matching window)")
    for col in ("record", "reference", "TP", "FN", "FP", "Se %", "+P %"):
        table.add_column(col, justify="right")
    for r in report["records"]:
        table.add_row(r["record"], str(r["reference"]), str(r["tp"]), str(r["fn"]), str(r["fp"]), _fmt(r["se"]),
                      _fmt(r["ppv"]))
    t = report["total"]
    table.add_row("gross", str(t.get("reference", "")), str(t["tp"]), str(t["fn"]), str(t["fp"]), _fmt(t["se"]),
                  _fmt(t["ppv"]), style="bold")
    out.print(table)


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _class_list(classes: str | None) -> list[str] | None:
    """The AAMI classes of ``--classes`` (a comma list), refused when empty or unknown."""
    if classes is None:
        return None
    wanted = list(dict.fromkeys(c.strip().upper() for c in classes.split(",") if c.strip()))
    unknown = [c for c in wanted if c not in AAMI_CLASSES]
    if not wanted or unknown:
        what = f"unknown class(es) {', '.join(map(repr, unknown))}" if unknown else "no class"
        raise ParameterError(f"--classes {classes!r}: {what}; expected a comma list of {', '.join(AAMI_CLASSES)}")
    return wanted


def _check_k(value: int, maximum: int, option: str = "-k", low: int = 1) -> None:
    if not low <= value <= maximum:
        shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:12]}... ({len(str(value))} digits)"
        raise ParameterError(f"{option} must be from {low} to {maximum}, not {shown}")


def _whole_numbers(text: str, option: str, signed: bool = False) -> list[int]:
    """A comma list of whole numbers (``signed``: a leading minus allowed), refused when malformed."""
    parts = [p.strip() for p in text.split(",")]
    digits = [p[1:] if signed and p.startswith("-") else p for p in parts]
    if not all(d.isascii() and d.isdigit() and len(d) <= 9 for d in digits):
        kind = "integers" if signed else "whole numbers"
        raise ParameterError(f"{option} must be a comma list of {kind}, not {text!r}")
    return [int(p) for p in parts]


def _checked_records(spec: str, data_dir: Path | None, lead: str | None) -> list[str]:
    """The records of a ``--records`` list to index or train on, each found, its header and
    annotations read (a bad one is refused before any signal is read or the encoder
    loads). A record whose annotation file holds no beat has nothing to index."""
    names = record_list(spec)
    data_dir_from(data_dir)
    for name in names:
        path = check_record(name, data_dir, lead)
        if path.with_name(f"{path.name}.atr").is_file():
            _, symbols = read_annotations(path, "atr")
            if not any(s in SYMBOL_TO_AAMI for s in symbols):
                raise AnnotationError(f"{path.name}.atr holds no beat annotation: nothing to index "
                                      f"(remove it to index detected, unlabeled beats)")
    return names


def _check_file(path: Path | None, what: str) -> None:
    if path is not None and not path.is_file():
        raise RecordNotFoundError(f"{what} not found: {path}")


def _check_output_file(path: Path | None, option: str) -> None:
    """Refuse an output file that could not be written at the end of the work."""
    if path is None:
        return
    if path.is_dir():
        raise ParameterError(f"{option} {path} is a directory, not a file")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ParameterError(f"{option} {path}: {parent} is not a directory")


def _check_output_dir(path: Path, option: str) -> None:
    if path.exists() and not path.is_dir():
        raise ParameterError(f"{option} {path} is not a directory")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ParameterError(f"{option} {path}: {parent} is not a directory")


def _one_line(text: str) -> str:
    """``text`` as one printable line: control characters and line breaks (also the
    Unicode ones) escaped, so a hostile file or record name cannot add lines."""
    text = " ".join(part.strip() for part in str(text).strip().splitlines())
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


def _fail(message: str) -> None:
    """One ``error:`` line on stderr, exit code 2."""
    sys.stdout.flush()
    prefix = "\x1b[31merror:\x1b[0m" if sys.stderr.isatty() and not os.environ.get("NO_COLOR") else "error:"
    print(f"{prefix} {_one_line(message) or 'bad input'}", file=sys.stderr, flush=True)
    sys.exit(2)


def _os_error_line(exc: OSError) -> str:
    """The system's reason and the path it concerns, without Python's ``[Errno N]`` and a path cut to be read
    (a name too long is the error itself)."""
    paths = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    shown = [name if len(name) <= 100 else f"{name[:60]}...{name[-24:]} ({len(name)} characters)" for name in paths]
    why = exc.strerror or type(exc).__name__
    return f"{' -> '.join(shown)}: {why[:1].lower() + why[1:]}" if shown else why


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point; ``argv`` defaults to the command line.

    Bad input of any kind (a simsearch error, an unwritable output, or one of typer's
    usage errors: unknown option or command, missing option, a value of the wrong type)
    becomes one ``error: ...`` line on stderr and exit code 2; no traceback, no usage
    box. Any other exception is a bug, reported the same way as an internal error
    (``SIMSEARCH_DEBUG=1`` lets its traceback through). Python warnings stay off stderr
    unless asked for (``-W``, ``PYTHONWARNINGS``).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    click = sys.modules[typer.BadParameter.__module__]  # click, or the copy typer ships (typer >= 0.16)
    no_args = getattr(click, "NoArgsIsHelpError", ())
    command = typer.main.get_command(app)
    with warnings.catch_warnings():
        if not sys.warnoptions:
            warnings.simplefilter("ignore")
        try:
            code = command.main(args=None if argv is None else [str(a) for a in argv], prog_name="simsearch",
                                standalone_mode=False)
        except no_args as exc:  # bare `simsearch`: the help on stdout, and it is still a usage error
            print(exc.ctx.get_help())
            _fail(f"missing command (one of: {', '.join(command.list_commands(exc.ctx))})")
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "simsearch"
            _fail(f"{exc.format_message()} (see '{where} --help')")
        except click.ClickException as exc:
            _fail(exc.format_message())
        except (typer.Abort, getattr(click, "Abort", typer.Abort)):  # Ctrl-C, or end of input at a prompt
            _fail("aborted")
        except SimsearchError as exc:
            _fail(str(exc))
        except OSError as exc:  # an unwritable --out or --plot, a full disk, a name too long
            _fail(_os_error_line(exc))
        except MemoryError:
            _fail("out of memory")
        except Exception as exc:  # a bug, yet still one line: hostile input must never end in a traceback
            if os.environ.get(DEBUG_ENV):
                raise
            _fail(f"internal error ({type(exc).__name__}: {exc}); set {DEBUG_ENV}=1 to see the traceback")
    if isinstance(code, int) and code:
        sys.exit(code)
