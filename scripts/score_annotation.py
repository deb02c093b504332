"""Score a WFDB annotation file against a record's reference annotations, beat by beat (EC57).

    python scripts/score_annotation.py RECORD_PATH --test-ext pred [--ref-ext atr] [--test-dir DIR] [--json]

Both files' beat symbols are mapped to AAMI classes; beats are matched within 150 ms.
A missed reference beat counts against its class's Se, an extra test beat against the
+P of the class it was given. For checking `simsearch annotate` output on a record whose
reference annotations are kept elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import SYMBOL_TO_AAMI, class_index, to_aami
from simsearch.evaluation.matching import match_labels, matched_metrics


def beat_annotations(record: Path, ext: str) -> tuple[np.ndarray, np.ndarray, float]:
    ann = wfdb.rdann(str(record), ext)
    keep = np.array([s in SYMBOL_TO_AAMI for s in ann.symbol], dtype=bool)
    symbols = np.asarray(ann.symbol, dtype=object)[keep]
    return np.asarray(ann.sample)[keep], class_index(to_aami(symbols)), float(ann.fs or 360)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("record", type=Path, help="the record with its reference annotation file")
    parser.add_argument("--ref-ext", default="atr")
    parser.add_argument("--test-ext", default="pred")
    parser.add_argument("--test-dir", type=Path, help="where the test annotation file is (default: beside the record)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reference, ref_classes, fs = beat_annotations(args.record, args.ref_ext)
    test_record = (args.test_dir / args.record.name) if args.test_dir else args.record
    test, test_classes, _ = beat_annotations(test_record, args.test_ext)
    report = matched_metrics(*match_labels(reference, ref_classes, test, test_classes, fs))
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.record.name}: {len(reference)} reference beats, {len(test)} test beats, "
          f"{report['missed_reference_beats']} missed, {report['extra_beats']} extra")
    for c, row in report["classes"].items():
        print(f"  {c}: n {row['n']:5d}  Se {row['se']}  +P {row['ppv']}")
    print(f"  accuracy {report['accuracy']}")


if __name__ == "__main__":
    main()
