"""A corpus of bad input: every case ends in exactly one ``error: ...`` line and exit code 2.

Each case runs the command line in-process (``simsearch.cli.main`` with its argv) and
checks: exit code 2, one non-empty stderr line starting with ``error:``, no traceback,
and nothing new left in the output directory (nor in the index, which is the shared
``small_index``: no case may write to it). A handful run as real subprocesses too.

The kinds covered: typer's own usage errors (unknown option or command, missing or
malformed values), headers (sampling rate zero, negative, text, NaN, absurd; signal
lengths the file cannot hold, zero or text; no signals; garbage, empty, binary), signal
files (missing, a directory, a device, outside the record's directory, empty, truncated,
unknown formats, NaN or flat samples, too short), annotation files (truncated, corrupt,
no beat annotation), record names (empty, blank, '..', '/', paths to nothing, a
directory, line separators), samples, -k, classes, labels files (fractional, exponent,
huge and negative samples, binary, not UTF-8, NUL bytes, devices, directories),
extensions, output paths, index directories and an encoder that did not build the index.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

from simsearch.cli import main
from simsearch.signal.records import load_record

HEADER_CASES = {
    # name: (record line, message fragment); every one shares the good signal line and base.dat
    "fs_zero": ("{n} 1 0 3600", "sampling rate"),
    "fs_negative": ("{n} 1 -360 3600", "sampling rate"),
    "fs_text": ("{n} 1 fast 3600", "sampling rate"),
    "fs_huge": ("{n} 1 1e9 3600", "sampling rate"),
    "fs_one_hz": ("{n} 1 1 3600", "sampling rate"),
    "fs_nan": ("{n} 1 nan 3600", "sampling rate"),
    "fs_inf": ("{n} 1 inf 3600", "sampling rate"),
    "len_absurd": ("{n} 1 360 999999999999999", "truncated"),
    "len_past_file": ("{n} 1 360 3601", "truncated"),
    "len_text": ("{n} 1 360 long", "signal length"),
    "len_negative": ("{n} 1 360 -5", "signal length"),
    "no_signals": ("{n} 0 360 3600", "no signal"),
    "more_signals": ("{n} 2 360 3600", "signal line"),
    "signals_text": ("{n} one 360 3600", "malformed header"),
    "multi_segment": ("{n}/2 1 360 3600", "multi-segment"),
}
RAW_HEADERS = {
    "hea_empty": (b"", "malformed header"),
    "hea_garbage": (b"garbage header\nthis is not a signal line\n", "malformed header"),
    "hea_binary": (bytes(range(256)), "malformed header"),
    "hea_comments_only": (b"# nothing but a comment\n", "malformed header"),
    "hea_bad_signal_line": (b"{n} 1 360 3600\nbase.dat sixteen x y z\n", "malformed header"),
}
DAT_CASES = {
    # name: (what the header's data file is, message fragment)
    "dat_missing": (None, "signal file missing"),
    "dat_directory": ("dir", "not a file"),
    "dat_empty": (b"", "truncated"),
    "dat_truncated": (1000, "truncated"),
}
SIGNAL_CASES = {
    # name: (record line, (old, new) in the signal line, samples of its own data file or None, message fragment)
    "len_zero": ("{n} 1 360 0", None, None, "no samples"),
    "short_at_high_rate": ("{n} 1 10000 100", None, None, "too short"),
    "fmt_unknown": ("{n} 1 360 3600", (" 16 ", " 999 "), None, "cannot be read"),
    "fmt_zero": ("{n} 1 360 3600", (" 16 ", " 0 "), None, "cannot be read"),
    "frames_huge": ("{n} 1 360 3600", (" 16 ", " 16x1000000 "), None, "truncated"),
    "offset_huge": ("{n} 1 360 3600", (" 16 ", " 16+99999999999 "), None, "truncated"),
    "dat_outside": ("{n} 1 360 3600", ("base.dat", "../../../../etc/passwd"), None, "malformed header"),
    "dat_device": ("{n} 1 360 3600", ("base.dat", "/dev/zero"), None, "malformed header"),
    "nan_samples": ("{n} 1 360 3600", ("base.dat", "nan_samples.dat"), np.full(3600, -32768), "NaN"),
    "mostly_nan": ("{n} 1 360 3600", ("base.dat", "mostly_nan.dat"), np.r_[np.full(3500, -32768), np.arange(100)],
                   "too short"),
    "flat": ("{n} 1 360 3600", ("base.dat", "flat.dat"), np.zeros(3600), "flat"),
    "gain_text": ("{n} 1 360 3600", (".dat 16 ", ".dat 16 abc "), None, "gain 'abc'"),
    "gain_bad_baseline": ("{n} 1 360 3600", (".dat 16 ", ".dat 16 200(x) "), None, "gain '200(x)'"),
}
ATR_CASES = {
    "atr_truncated": ("cut", "truncated"),
    "atr_one_byte": (b"\x01", "truncated"),
    "atr_garbage": (bytes(range(256)) * 4, "truncated"),
    "atr_corrupt": (bytes(range(1, 256)) * 10 + b"\x00\x00", "cannot be read"),
    "atr_empty": (b"", "no beats"),
    "atr_end_only": (b"\x00\x00", "no beats"),
    "atr_non_beats": ("non-beats", "no beats"),
}
LABEL_FILES = {
    "float": ("100.5,V\n", "not a whole number"),
    "float_after_header": ("sample,label\n100.5,V\n", "not a whole number"),
    "exponent": ("1e3,V\n", "not a whole number"),
    "huge": ("9" * 5000 + ",V\n", "out of range"),
    "negative": ("-5,N\n", "negative"),
    "unknown_label": ("100,X\n", "unknown label"),
    "one_column": ("100\n", "expected 'sample,label'"),
    "twice": ("100,V\n100,N\n", "labeled twice"),
    "not_utf8": (b"\xff\xfe1\x000\x000\x00,\x00V\x00", "not UTF-8"),
    "binary": (bytes(range(256)) * 8, "not UTF-8"),
    "nul_bytes": (b"100,V\n\x00\x00\n", "NUL"),
    "line_separator": ("1\u202800,V\n", "not a whole number"),
}


@pytest.fixture(scope="module")
def hostile(data_dir, tmp_path_factory) -> Path:
    """Records with one defect each (all 10 s of record 100 at 360 Hz), and bad labels files."""
    bad = tmp_path_factory.mktemp("hostile")
    signal = load_record("100", data_dir).signal[:3600]
    wfdb.wrsamp("base", fs=360, units=["mV"], sig_name=["MLII"], p_signal=signal[:, None], fmt=["16"],
                write_dir=str(bad))
    signal_line = (bad / "base.hea").read_text().splitlines()[1]
    for name, (line, _) in HEADER_CASES.items():
        (bad / f"{name}.hea").write_text(line.format(n=name) + "\n" + signal_line + "\n")
    for name, (text, _) in RAW_HEADERS.items():
        (bad / f"{name}.hea").write_bytes(text.replace(b"{n}", name.encode()))
    for name, (data, _) in DAT_CASES.items():
        (bad / f"{name}.hea").write_text(f"{name} 1 360 3600\n" + signal_line.replace("base.dat", f"{name}.dat")
                                         + "\n")
        if data == "dir":
            (bad / f"{name}.dat").mkdir()
        elif isinstance(data, int):
            (bad / f"{name}.dat").write_bytes((bad / "base.dat").read_bytes()[:data])
        elif data is not None:
            (bad / f"{name}.dat").write_bytes(data)
    for name, (line, change, samples, _) in SIGNAL_CASES.items():
        signal_of_case = signal_line.replace(*change) if change else signal_line
        (bad / f"{name}.hea").write_text(line.format(n=name) + "\n" + signal_of_case + "\n")
        if samples is not None:
            (bad / f"{name}.dat").write_bytes(np.asarray(samples, dtype="<i2").tobytes())
    beats = np.arange(100, 3600, 300)
    wfdb.wrann("good", "atr", beats, symbol=["N"] * beats.size, write_dir=str(bad))
    wfdb.wrann("nonbeat", "atr", np.array([10, 500, 1000]), symbol=["+", "~", "|"], write_dir=str(bad))
    for name, (data, _) in ATR_CASES.items():
        (bad / f"{name}.hea").write_text(f"{name} 1 360 3600\n{signal_line}\n")
        if data == "cut":
            data = (bad / "good.atr").read_bytes()[:-3]
        elif data == "non-beats":
            data = (bad / "nonbeat.atr").read_bytes()
        (bad / f"{name}.atr").write_bytes(data)
    labels = bad / "labels"
    labels.mkdir()
    for name, (text, _) in LABEL_FILES.items():
        (labels / f"{name}.csv").write_bytes(text if isinstance(text, bytes) else text.encode())
    (labels / "a_directory").mkdir()
    (bad / "a_file").write_text("not an index\n")
    return bad


@pytest.fixture(scope="module")
def other_encoder(tmp_path_factory) -> Path:
    """An encoder that did not build the shared index (TensorFlow is loaded by the index anyway)."""
    from simsearch.model.encoder import Encoder, build_encoder

    path = tmp_path_factory.mktemp("enc") / "other.keras"
    Encoder(build_encoder(seed=11)).save(path)
    return path


def _cases():
    """(argv template, fragment of the error line, id); templates name {idx}, {data}, {out}, {bad}, {labels}."""
    query = ("query", "{idx}", "--record", "119", "--sample", "1000")
    annotate = ("annotate", "{idx}", "119", "--data-dir", "{data}", "--out", "{out}/ann")
    cases = [
        # typer's own usage errors
        ((), "missing command", "bare"),
        (("bogus",), "No such command", "unknown-command"),
        (("--nope",), "No such option", "unknown-global-option"),
        (("query",), "Missing argument", "query-no-index"),
        (("query", "{idx}"), "Missing option", "query-no-record"),
        (("query", "{idx}", "--record", "119"), "Missing option '--sample'", "query-no-sample"),
        (("query", "{idx}", "--record"), "requires an argument", "option-without-value"),
        ((*query, "--bogus"), "No such option", "unknown-option"),
        (("info",), "Missing argument", "info-no-index"),
        (("info", "{idx}", "extra"), "unexpected extra argument", "extra-argument"),
        (("evaluate", "--task", "nope"), "--task", "unknown-task"),
        ((*annotate, "--beats", "sometimes"), "--beats", "unknown-beat-source"),
        ((*annotate, "--suggest", "-1"), "--suggest", "negative-suggest"),
        (("train", "--out", "{out}/e.keras", "--steps", "0"), "--steps", "zero-steps"),
        # samples
        *[(("query", "{idx}", "--record", "119", "--sample", s), "--sample", f"sample-{i}")
          for i, s in enumerate(("abc", "1.5", "", " ", "1e3", "0x10", "-1"))],
        (("query", "{idx}", "--record", "119", "--sample", "99999999999"), "outside the record", "sample-past-end"),
        (("query", "{idx}", "--record", "119", "--sample", str(10**30)), "outside the record", "sample-huge"),
        # -k
        *[((*query, "-k", k), "-k", f"k-{k[:6]}") for k in ("0", "-3", "abc", "1.5")],
        *[((*query, "-k", k), "-k must be from 1 to", f"k-{len(k)}-digits") for k in (str(10**9), str(10**30))],
        ((*annotate, "-k", str(10**30)), "-k must be from 1 to", "annotate-k-huge"),
        # classes
        *[((*query, "--classes", c), "--classes", f"classes-{i}") for i, c in enumerate((",", "X", "n,z", " ", "SV"))],
        # record names
        *[(("query", "{idx}", "--record", r, "--sample", "5", "--data-dir", "{data}"), what, f"record-{i}")
          for i, (r, what) in enumerate((("", "not a record name"), (" ", "not a record name"),
                                         ("..", "not a record name"), (".", "not a record name"),
                                         ("/", "not a record name"), ("/nonexistent/rec", "record not found"),
                                         ("{out}", "record not found"), ("a b", "record not found"),
                                         ("~nobody-here/x", "record not found"),
                                         ("rec\u2028x", "record not found"), ("../../etc/passwd", "record not found"),
                                         ("999", "record not found"), ("{bad}/base.dat", "record not found")))],
        (("query", "{idx}", "--record", "100x", "--sample", "5"), "no data directory", "record-no-data-dir"),
        ((*query, "--data-dir", "{out}/nowhere"), "data directory not found", "data-dir-missing"),
        ((*query, "--data-dir", "{bad}/a_file"), "data directory not found", "data-dir-a-file"),
        (("query", "{idx}", "--record", "100", "--sample", "5", "--data-dir", "{data}", "--lead", "V9"),
         "no lead 'V9'", "lead-missing"),
        # index directories and encoders
        (("info", "{out}/missing"), "index not found", "index-missing"),
        (("info", "{bad}/a_file"), "index", "index-a-file"),
        (("info", "{bad}"), "index", "index-not-one"),
        (("query", "{out}/missing", "--record", "119", "--sample", "5"), "index not found", "query-index-missing"),
        ((*query, "--encoder", "{out}/missing.keras"), "encoder model not found", "encoder-missing"),
        ((*query, "--encoder", "{other_encoder}"), "was built with encoder", "encoder-mismatch"),
        # outputs
        ((*query, "--plot", "{out}"), "is a directory", "plot-a-directory"),
        ((*query, "--plot", "{bad}/a_file/x.png"), "not a directory", "plot-under-a-file"),
        ((*query, "--plot", "/proc/version"), "/proc/version: cannot be written there", "plot-where-no-file-is-made"),
        (("build", "{out}/" + "x" * 300, "--records", "119", "--data-dir", "{data}"),
         ": file name too long", "build-name-too-long"),
        (("serve", "{idx}", "--workspace-dir", "{bad}/a_file"), "--workspace-dir", "serve-workspaces-in-a-file"),
        (("train", "--out", "{out}/encoder.txt"), ".keras", "train-out-not-keras"),
        (("train", "--out", "{out}/e.keras", "--records", "nope", "--data-dir", "{data}"), "record not found",
         "train-record-missing"),
        (("train", "--out", "{out}/e.keras", "--data-dir", "{data}", "--noise-dir", "{out}/nowhere"),
         "noise stress test directory not found", "train-noise-dir-missing"),
        (("train", "--out", "{out}/e.keras", "--data-dir", "{data}", "--noise-dir", "{data}"), "record not found",
         "train-noise-dir-without-noise"),
        (("annotate", "{idx}", "119", "--data-dir", "{data}", "--out", "{bad}/a_file"), "not a directory",
         "annotate-out-a-file"),
        # annotate: extensions and labels files
        *[((*annotate, "--ext", e), "extension", f"ext-{i}")
          for i, e in enumerate(("atr", "hea", "dat", "a/b", "", ".."))],
        *[((*annotate, "--labels", f"{{labels}}/{name}.csv"), what, f"labels-{name}")
          for name, (_, what) in LABEL_FILES.items()],
        ((*annotate, "--labels", "{labels}/missing.csv"), "not found", "labels-missing"),
        ((*annotate, "--labels", "{labels}/a_directory"), "not a file", "labels-a-directory"),
        ((*annotate, "--labels", os.devnull), "not a file", "labels-a-device"),
        (("annotate", "{idx}", "{bad}/atr_non_beats", "--out", "{out}/ann", "--beats", "reference"), "no beats",
         "annotate-reference-without-beats"),
        (("annotate", "{idx}", "{bad}/fs_huge", "--out", "{out}/ann"), "sampling rate", "annotate-bad-header"),
        # build, add, evaluate
        (("build", "{out}/idx", "--records", ""), "no record named", "build-no-records"),
        (("build", "{out}/idx", "--records", ","), "no record named", "build-comma"),
        (("build", "{out}/new/idx", "--data-dir", "{data}", "--records", "119,nope"), "record not found",
         "build-one-missing"),
        (("build", "{out}/idx", "--data-dir", "{data}", "--records", "119", "--lead", "V9"), "no lead", "build-lead"),
        (("build", "{out}/idx", "--data-dir", "{out}/nowhere", "--records", "119"), "data directory not found",
         "build-data-dir"),
        (("build", "{out}/new/idx", "--records", "{bad}/nan_samples,{bad}/base"), "NaN", "build-fails-midway"),
        (("build", "{out}/idx", "--records", "{bad}/atr_non_beats"), "no beat annotation", "build-no-beats"),
        (("build", "{out}/idx", "--data-dir", "{data}", "--records", "119,119"), "named twice", "build-record-twice"),
        (("build", "{out}/idx", "--data-dir", "{data}", "--records", "119,{data}/119"), "named twice",
         "build-record-twice-by-path"),
        (("evaluate", "--task", "detection", "--records", "100,100", "--data-dir", "{data}"), "named twice",
         "evaluate-record-twice"),
        (("build", "{out}/idx", "--records", "{bad}/atr_empty"), "no beat annotation", "build-empty-atr"),
        (("build", "{out}/idx", "--records", "{bad}/atr_truncated"), "truncated", "build-truncated-atr"),
        (("build", "{out}/idx", "--records", "119", "--data-dir", "{data}", "--encoder", "{out}/no.keras"),
         "encoder model not found", "build-encoder-missing"),
        (("build", "{bad}/a_file", "--records", "119", "--data-dir", "{data}"), "not a directory", "build-into-a-file"),
        (("add", "{out}/missing", "--records", "{bad}/fs_zero"), "sampling rate", "add-bad-record"),
        (("evaluate", "--budgets", "1,x"), "--budgets", "evaluate-budgets"),
        (("evaluate", "--budgets", ""), "--budgets", "evaluate-empty-budgets"),
        (("evaluate", "--records", "101", "--data-dir", "{data}"), "overlap DS1", "evaluate-ds1-overlap"),
        (("evaluate", "--task", "detection", "--records", "nope", "--data-dir", "{data}"), "record not found",
         "evaluate-record-missing"),
        (("evaluate", "--data-dir", "{data}", "--encoder", "{out}/no.keras"), "encoder model not found",
         "evaluate-encoder-missing"),
    ]
    signal_cases = {name: (None, what) for name, (*_, what) in SIGNAL_CASES.items()}
    for name, (_, what) in {**HEADER_CASES, **RAW_HEADERS, **DAT_CASES, **signal_cases, **ATR_CASES}.items():
        cases.append((("query", "{idx}", "--record", f"{{bad}}/{name}", "--sample", "100"), what, f"query-{name}"))
    for name in ("fs_zero", "fs_huge", "len_past_file", "hea_empty", "dat_truncated", "atr_corrupt"):
        what = {**HEADER_CASES, **RAW_HEADERS, **DAT_CASES, **ATR_CASES}[name][1]
        cases.append((("build", "{out}/idx", "--records", f"{{bad}}/{name}"), what, f"build-{name}"))
    return [pytest.param(argv, what, id=name) for argv, what, name in cases]


def _files(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in Path(root).rglob("*")}


def assert_one_error_line(code, stderr: str, fragment: str) -> None:
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    assert fragment.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize("argv, fragment", _cases())
def test_bad_input_gives_one_error_line(argv, fragment, request, small_index, data_dir, hostile, tmp_path, capsys,
                                        monkeypatch):
    monkeypatch.delenv("SIMSEARCH_DATA", raising=False)
    places = {"idx": small_index.path, "data": data_dir, "out": tmp_path, "bad": hostile, "labels": hostile / "labels"}
    if "{other_encoder}" in " ".join(argv):
        places["other_encoder"] = request.getfixturevalue("other_encoder")
    before = _files(tmp_path, small_index.path, hostile)
    with pytest.raises(SystemExit) as exit_info:
        main([a.format(**places) for a in argv])
    assert_one_error_line(exit_info.value.code, capsys.readouterr().err, fragment)
    assert _files(tmp_path, small_index.path, hostile) == before, "files left behind"


@pytest.mark.parametrize("argv, fragment", [
    pytest.param(("--nope",), "No such option", id="usage"),
    pytest.param(("query", "{idx}", "--record", "119", "--sample", "abc"), "--sample", id="bad-int"),
    pytest.param(("query", "{idx}", "--record", "nope", "--sample", "1", "--data-dir", "{data}"), "record not found",
                 id="bad-record"),
    pytest.param(("query", "{idx}", "--record", "{bad}/fs_huge", "--sample", "100"), "sampling rate", id="bad-header"),
    pytest.param(("annotate", "{idx}", "119", "--data-dir", "{data}", "--out", "{out}/ann", "--labels",
                  "{bad}/labels/float.csv"), "not a whole number", id="bad-labels"),
])
def test_bad_input_as_a_user_runs_it(argv, fragment, small_index, data_dir, hostile, tmp_path):
    places = {"idx": small_index.path, "data": data_dir, "out": tmp_path, "bad": hostile}
    env = {k: v for k, v in os.environ.items() if k != "SIMSEARCH_DATA"}
    proc = subprocess.run([sys.executable, "-m", "simsearch", *(a.format(**places) for a in argv)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert_one_error_line(proc.returncode, proc.stderr, fragment)
    assert not list(tmp_path.iterdir())

