"""Make a realistic 24-hour two-lead Holter recording from MIT-BIH records, for scale tests.

MIT-BIH records of one lead pair (MLII and V1 by default: 40 of the 48) are joined end
to end, each centred on its median so no baseline step marks a joint, and cycled until
the wanted duration is reached (24 h takes the 40 records once, 20 h, and the first 8
again). Every annotation (beats, rhythm changes, noise marks) is carried over to its new
position. The result is written, optionally resampled to a Holter rate (128 or 250 Hz),

* as WFDB: ``NAME.hea``, ``NAME.dat`` (format 16) and ``NAME.atr``;
* as EDF+ (pyedflib): ``NAME.edf``, 16-bit samples over +-20 mV, with every annotation
  as an EDF+ annotation whose text is the MIT-BIH symbol (followed by the aux note,
  e.g. ``+ (AFIB``, where there is one).

into a directory the user names (never the repository: these files are 100-200 MB).

    python scripts/make_holter.py --out /tmp/holter [--hours 24] [--fs 360|250|128] [--name holter24]
        [--data-dir ../shared/data/mitdb] [--formats wfdb,edf] [--records 119,208] [--record-minutes 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simsearch.aami import SYMBOL_TO_AAMI  # noqa: E402
from simsearch.signal.filtering import resample  # noqa: E402

LEAD_PAIR = ("MLII", "V1")
PHYSICAL_RANGE_MV = 20.0
"""EDF samples are 16-bit over +-this (0.6 uV a step, finer than MIT-BIH's 5 uV)."""


def lead_pair_records(data_dir: Path, leads: tuple[str, str]) -> list[str]:
    import wfdb

    names = sorted(p.stem for p in data_dir.glob("*.hea"))
    return [n for n in names if list(wfdb.rdheader(str(data_dir / n)).sig_name) == list(leads)]


def concatenate(data_dir: Path, records: list[str], seconds: float, fs_out: float | None,
                record_seconds: float | None = None):
    """(signal (n, 2) in mV, fs, annotation samples, symbols, aux notes, records used);
    ``record_seconds``: take only the first seconds of each record."""
    import wfdb

    parts, samples, symbols, aux, used = [], [], [], [], []
    total = 0
    fs = None
    i = 0
    while True:
        name = records[i % len(records)]
        i += 1
        sampto = None if record_seconds is None else int(round(record_seconds * wfdb.rdheader(str(data_dir / name)).fs))
        record = wfdb.rdrecord(str(data_dir / name), sampto=sampto)
        ann = wfdb.rdann(str(data_dir / name), "atr", sampto=sampto)
        fs_rec = float(record.fs)
        fs = fs if fs is not None else (fs_out or fs_rec)
        signal = record.p_signal - np.median(record.p_signal, axis=0)
        signal = resample(signal, fs_rec, fs)
        positions = np.round(np.asarray(ann.sample) * fs / fs_rec).astype(np.int64)
        take = min(signal.shape[0], int(round(seconds * fs)) - total)
        keep = (positions >= 0) & (positions < take)
        parts.append(signal[:take])
        samples.append(positions[keep] + total)
        symbols += list(np.asarray(ann.symbol)[keep])
        aux += [a or "" for a in np.asarray(ann.aux_note, dtype=object)[keep]]
        used.append(name)
        total += take
        if total >= int(round(seconds * fs)):
            break
    return np.concatenate(parts), fs, np.concatenate(samples), symbols, aux, used


def write_wfdb(out: Path, name: str, signal: np.ndarray, fs: float, leads, samples, symbols, aux) -> list[Path]:
    import wfdb

    wfdb.wrsamp(name, fs=fs, units=["mV", "mV"], sig_name=list(leads), p_signal=signal, fmt=["16", "16"],
                adc_gain=[1000.0, 1000.0], baseline=[0, 0], write_dir=str(out))
    wfdb.wrann(name, "atr", np.asarray(samples), symbol=list(symbols), aux_note=list(aux), fs=fs,
               write_dir=str(out))
    return [out / f"{name}.{ext}" for ext in ("hea", "dat", "atr")]


def write_edf(path: Path, signal: np.ndarray, fs: float, leads, samples, symbols, aux) -> Path:
    """EDF+ with one annotation per WFDB annotation: text = symbol (+ ' ' + aux note)."""
    import pyedflib

    if abs(fs - round(fs)) > 1e-9:
        raise SystemExit(f"EDF needs a whole number of samples per 1 s data record, not {fs} Hz")
    writer = pyedflib.EdfWriter(str(path), len(leads), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders([{"label": lead, "dimension": "mV", "sample_frequency": int(round(fs)),
                                  "physical_min": -PHYSICAL_RANGE_MV, "physical_max": PHYSICAL_RANGE_MV,
                                  "digital_min": -32768, "digital_max": 32767, "transducer": "",
                                  "prefilter": ""} for lead in leads])
        writer.setPatientCode("simsearch-holter")
        # ~1.3 beat annotations a second plus timekeeping: give edflib room in every data record
        writer.set_number_of_annotation_signals(4)
        clipped = np.clip(signal, -PHYSICAL_RANGE_MV, PHYSICAL_RANGE_MV)
        writer.writeSamples([np.ascontiguousarray(clipped[:, j]) for j in range(clipped.shape[1])])
        for sample, symbol, note in zip(samples, symbols, aux):
            text = f"{symbol} {note.strip(chr(0)).strip()}".strip()
            writer.writeAnnotation(float(sample) / fs, -1, text)
    finally:
        writer.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory to write into (created; not inside the repository)")
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", str(REPO.parent / "shared" / "data" /
                                                                                  "mitdb")))
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--fs", type=float, default=None, help="resample to this rate (e.g. 128, 250; default: 360)")
    parser.add_argument("--name", default=None, help="record name (default: holter<hours>[_<fs>])")
    parser.add_argument("--records", default=None, help="comma list of records to cycle (default: every MIT-BIH "
                                                        "record whose leads are MLII, V1)")
    parser.add_argument("--formats", default="wfdb,edf", help="wfdb, edf or both")
    parser.add_argument("--record-minutes", type=float, default=None,
                        help="take only the first minutes of each record (default: all 30)")
    args = parser.parse_args()

    out = Path(args.out).expanduser().resolve()
    if out == REPO or REPO in out.parents:
        raise SystemExit(f"refusing to write into the repository ({out}): name a directory outside it")
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    if not formats or formats - {"wfdb", "edf"}:
        raise SystemExit(f"--formats: wfdb, edf or both, not {args.formats!r}")
    data_dir = Path(args.data_dir)
    records = args.records.split(",") if args.records else lead_pair_records(data_dir, LEAD_PAIR)
    if not records:
        raise SystemExit(f"no record with leads {', '.join(LEAD_PAIR)} in {data_dir}")
    name = args.name or f"holter{args.hours:g}" + (f"_{args.fs:g}" if args.fs else "")
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    record_seconds = None if args.record_minutes is None else args.record_minutes * 60
    signal, fs, samples, symbols, aux, used = concatenate(data_dir, records, args.hours * 3600, args.fs,
                                                          record_seconds)
    beats = sum(s in SYMBOL_TO_AAMI for s in symbols)
    print(f"{name}: {signal.shape[0] / fs / 3600:.2f} h at {fs:g} Hz, leads {', '.join(LEAD_PAIR)}, "
          f"{len(used)} records ({', '.join(used)}), {len(samples)} annotations ({beats} beats), "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    written = []
    if "wfdb" in formats:
        t = time.perf_counter()
        written += write_wfdb(out, name, signal, fs, LEAD_PAIR, samples, symbols, aux)
        print(f"WFDB written in {time.perf_counter() - t:.1f} s", flush=True)
    if "edf" in formats:
        t = time.perf_counter()
        written.append(write_edf(out / f"{name}.edf", signal, fs, LEAD_PAIR, samples, symbols, aux))
        print(f"EDF+ written in {time.perf_counter() - t:.1f} s", flush=True)
    for path in written:
        print(f"  {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
