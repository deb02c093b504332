"""Train the packaged encoder: DS1 only, patient-disjoint validation inside DS1, fixed seed.

    python scripts/train_default_model.py --data-dir ../shared/data/mitdb

Writes simsearch/models/default.keras and its report default.json (configuration,
validation history, the step kept, training time). DS2 is never read. Every setting
in TrainingConfig's defaults was chosen by the validation score on the DS1 validation records
(simsearch.training.DS1_VALIDATION), never on DS2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import DS1  # noqa: E402
from simsearch.encoder import default_model_path  # noqa: E402
from simsearch.training import TrainingConfig, train_and_save  # noqa: E402



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--out", default=str(default_model_path()))
    args = parser.parse_args()
    report = train_and_save(args.out, list(DS1), args.data_dir, config=TrainingConfig(), progress=True)
    print(f"wrote {args.out} (encoder {report['fingerprint']}): best validation score {report['best_score']} "
          f"at step {report['best_step']}, {report['train_seconds']:.0f} s on {os.cpu_count()} CPU cores")
    best = next(h for h in report["history"] if h["step"] == report["best_step"])
    print("validation (DS1 records " + ", ".join(report["val_records"]) + "): "
          + ", ".join(f"{k} {v}" for k, v in best.items() if k not in ("step", "loss")))


if __name__ == "__main__":
    main()
