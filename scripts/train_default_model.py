"""Train the packaged encoder on all of DS1 with the cross-validated settings, fixed seed.

    python scripts/train_default_model.py --data-dir ../shared/data/mitdb [--noise-dir ../shared/data/nstdb]

Writes simsearch/models/default.keras and its report default.json (configuration,
records, training time). DS2 is never read. The training records' noisy copies take nstdb's ``em``
and ``ma`` noise records (``--noise-dir``, by default ``nstdb`` beside the data directory; 118 and
119, whose noisy copies the nstdb holds for the noise test, get none). The settings are TrainingConfig's
defaults, chosen by patient-disjoint cross-validation inside DS1
(scripts/cross_validate.py): since that already fixed the number of steps, the final
model trains on all 22 DS1 patients with no held-out set and keeps its last weights.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import DS1
from simsearch.evaluation.selection import train_and_save
from simsearch.model.encoder import default_model_path
from simsearch.model.training import TrainingConfig
from simsearch.signal.noise import nstdb_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--noise-dir", default=None, help="nstdb directory (default: nstdb beside --data-dir)")
    parser.add_argument("--out", default=str(default_model_path()))
    args = parser.parse_args()
    noise_dir = nstdb_dir(args.noise_dir, args.data_dir)
    config = TrainingConfig()
    report = train_and_save(args.out, list(DS1), args.data_dir, val_records=[], config=config, noise_dir=noise_dir,
                            progress=True)
    print(f"wrote {args.out} (encoder {report['fingerprint']}): {report['train_beats']} DS1 beats "
          f"({report['noisy_beats']} of them noisy copies), "
          f"{config.steps} steps, {report['train_seconds']:.0f} s on {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    main()
