"""Score simsearch's R-peak detector and wfdb's XQRS (the baseline) on annotated records.

The detectors run on the same records (the MLII lead where present) and are matched
against the reference beat annotations the same way (AAMI EC57: one to one, 150 ms):
simsearch's as the pipeline runs it (its beats checked in the record's other lead), the same
on its one lead alone, and XQRS.

    python scripts/eval_detection.py                       # all 48 MIT-BIH records
    python scripts/eval_detection.py --records 100,208 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from wfdb.processing import xqrs_detect

from simsearch.aami import parse_record_list
from simsearch.errors import SimsearchError
from simsearch.evaluation.detection import evaluate_detection, summarize_detection
from simsearch.signal.beats import detect_beats
from simsearch.signal.detection import detect_r_peaks
from simsearch.signal.records import Record

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "SIMSEARCH_DATA"
PIPED_WIDTH = 120
"""Table width when the output is not a terminal (rich would otherwise squeeze to 80)."""


def xqrs(record: Record) -> np.ndarray:
    """wfdb's XQRS as published, without peak refinement: the baseline to beat."""
    return xqrs_detect(record.signal, record.fs, verbose=False)


def one_lead(record: Record) -> np.ndarray:
    """simsearch's detector alone, without the second look in the other lead."""
    return detect_r_peaks(record.signal, record.fs)


DETECTORS: dict[str, Callable[[Record], np.ndarray]] = {"simsearch": detect_beats, "one lead": one_lead, "xqrs": xqrs}


def default_data_dir() -> Path:
    """``$SIMSEARCH_DATA``, else the shared MIT-BIH copy beside the repository."""
    chosen = os.environ.get(DATA_ENV)
    return Path(chosen).expanduser() if chosen else REPO_ROOT.parent / "shared" / "data" / "mitdb"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records",
        default="all",
        help="all, DS1, DS2 or a comma-separated list of record names (default: all 48)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help=f"record directory (default: ${DATA_ENV} or ../shared/data/mitdb)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    return parser.parse_args(argv)


def evaluate_all(records: list[str], data_dir: Path, status: Console) -> dict[str, list[dict]]:
    """Per-record rows for every detector, record by record so progress can be shown."""
    rows: dict[str, list[dict]] = {name: [] for name in DETECTORS}
    with status.status("") as spinner:
        for i, record in enumerate(records, 1):
            for name, detector in DETECTORS.items():
                spinner.update(f"record {record} ({i}/{len(records)}): {name}")
                rows[name].extend(evaluate_detection([record], data_dir, detector))
    return rows


def record_table(rows: dict[str, list[dict]]) -> Table:
    table = Table(title="R-peak detection per record (Se, +P in %; s: detector seconds)", box=box.SIMPLE_HEAD)
    table.add_column("Record")
    table.add_column("Beats", justify="right")
    for name in rows:
        for column in ("FN", "FP", "Se", "+P", "s"):
            table.add_column(f"{name}\n{column}", justify="right")
    names = list(rows)
    for i, first in enumerate(rows[names[0]]):
        cells = [first["record"], str(first["reference"])]
        for name in names:
            row = rows[name][i]
            cells += [str(row["fn"]), str(row["fp"]), f"{row['se']:.2f}", f"{row['ppv']:.2f}", f"{row['seconds']:.2f}"]
        table.add_row(*cells)
    return table


def summary_table(summaries: dict[str, dict]) -> Table:
    table = Table(title="Gross totals (every unmatched detection is a false positive)", box=box.SIMPLE_HEAD)
    for column in ("Detector", "Beats", "TP", "FN", "FP", "FP\nin VF", "Se %", "+P %", "+P %\nEC57", "s per\nrecord",
                   "s\ntotal"):
        table.add_column(column, justify="left" if column == "Detector" else "right")
    for name, s in summaries.items():
        table.add_row(
            name,
            str(s["reference"]),
            str(s["tp"]),
            str(s["fn"]),
            str(s["fp"]),
            str(s["fp_vf"]),
            f"{s['se']:.3f}",
            f"{s['ppv']:.3f}",
            f"{s['ppv_ec57']:.3f}",
            f"{s['seconds_per_record']:.3f}",
            f"{s['seconds']:.1f}",
        )
    table.caption = (
        "FP in VF: false positives inside ventricular flutter/fibrillation episodes; "
        "+P EC57 leaves those out, as AAMI EC57 does."
    )
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
    err = Console(stderr=True)
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    try:
        records = parse_record_list(args.records)
        rows = evaluate_all(records, data_dir, err)
    except SimsearchError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    summaries = {name: summarize_detection(detector_rows) for name, detector_rows in rows.items()}
    if args.json:
        result = {
            "data_dir": str(data_dir),
            "records": records,
            "detectors": {name: {"rows": rows[name], "summary": summaries[name]} for name in rows},
        }
        print(json.dumps(_without_nan(result), indent=2))
    else:
        out.print(record_table(rows))
        out.print(summary_table(summaries))
        out.print(f"{len(records)} records from {data_dir}", highlight=False)
    return 0


def _without_nan(value):
    """NaN (a rate with nothing to divide by) as null, so the output is strict JSON."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    return None if isinstance(value, float) and value != value else value


if __name__ == "__main__":
    sys.exit(main())
