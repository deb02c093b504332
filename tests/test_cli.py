"""The command line as a user runs it: JSON shapes, tables, exit codes, and a start-up
that loads nothing a command does not need.

Commands that embed nothing (help, version, info, a query of a stored beat) run as real
subprocesses: they start without TensorFlow, SciPy or wfdb, so they are cheap, and the
subprocess proves it. Commands that embed (build, a query of a record outside the index)
run in-process, where the session's TensorFlow is already loaded. Bad input has its own
corpus in test_bad_input.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import INDEX_RECORDS

import simsearch
from simsearch.cli import main
from simsearch.signal.records import load_record

HEAVY = ("tensorflow", "keras", "scipy", "wfdb", "pandas", "matplotlib")
"""Modules that take seconds to import and that no command without a signal to read or embed needs."""
STORAGE = ("faiss", "sqlalchemy")
"""What opening an index needs; --help and --version need not even these."""

PROBE = """
import json, sys
from simsearch.cli import main
try:
    main(sys.argv[1:])
finally:
    sys.stderr.write("\\nloaded: " + json.dumps(sorted(m for m in {modules!r} if m in sys.modules)) + "\\n")
"""


def probe(*args):
    """Run the command line in a fresh interpreter; (process, heavy modules it imported)."""
    env = {k: v for k, v in os.environ.items() if k != "SIMSEARCH_DATA"}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(modules=HEAVY + STORAGE), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)
    loaded = json.loads(proc.stderr.rsplit("loaded: ", 1)[1])
    return proc, loaded


def run(*args):
    return subprocess.run([sys.executable, "-m", "simsearch", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_help_and_version_import_nothing_heavy():
    for args in (["--help"], ["query", "--help"], ["--version"]):
        proc, loaded = probe(*args)
        assert proc.returncode == 0, proc.stderr
        assert loaded == [], args
    assert proc.stdout.strip() == f"simsearch {simsearch.__version__}"
    assert run("--version").stdout.strip() == f"simsearch {simsearch.__version__}"


def test_help_shows_choices_and_defaults(capsys):
    main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "<classification|detection|adaptive|end-to-end|noise>" in text and "[default: classification]" in text
    main(["annotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "<detect|reference>" in text and "[default: detect]" in text and "[default: pred]" in text


def test_query_of_a_stored_beat_loads_no_tensorflow(small_index, data_dir):
    rec = load_record("208", data_dir)
    sample = int(rec.ann_samples[rec.ann_symbols == "V"][3])
    proc, loaded = probe("query", small_index.path, "--record", "208", "--sample", sample, "-k", 5,
                         "--exclude-record", "--json")
    assert proc.returncode == 0, proc.stderr
    assert not set(loaded) & set(HEAVY), loaded
    answer = json.loads(proc.stdout)
    assert answer["query"]["record"] == "208" and answer["query"]["sample"] == sample
    assert len(answer["neighbors"]) == 5
    for n in answer["neighbors"]:
        assert {"record", "sample", "symbol", "aami", "distance"} <= set(n)
        assert n["record"] in INDEX_RECORDS and n["record"] != "208"
    assert set(answer["vote"]) == {"label", "confidence", "scores"} and answer["vote"]["label"] in "NSVFQ"


def test_query_table_and_info(small_index):
    proc = run("query", small_index.path, "--record", "119", "--sample", 20000, "-k", 3)
    assert proc.returncode == 0, proc.stderr
    assert "vote:" in proc.stdout and "distance" in proc.stdout
    info, loaded = probe("info", small_index.path, "--json")
    assert info.returncode == 0, info.stderr
    assert not set(loaded) & set(HEAVY), loaded
    details = json.loads(info.stdout)
    assert details["records"] == sorted(INDEX_RECORDS) and details["catalog"]["beats"] == details["n_vectors"]


def test_build_then_info(data_dir, tmp_path, capsys):
    main(["build", tmp_path / "idx", "--data-dir", data_dir, "--records", "119", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == 1 and report["beats"] > 1500 and set(report["by_class"]) >= {"N", "V"}
    main(["info", tmp_path / "idx", "--json"])
    assert json.loads(capsys.readouterr().out)["records"] == ["119"]


def test_query_uses_the_env_data_dir_for_records_outside_the_index(small_index, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("SIMSEARCH_DATA", str(data_dir))
    main(["query", small_index.path, "--record", "101", "--sample", 1000, "-k", 2, "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert answer["query"]["record"] == "101" and len(answer["neighbors"]) == 2


@pytest.mark.parametrize("classes", ["V", "s,v"])
def test_classes_filter_the_neighbors(small_index, classes, capsys):
    main(["query", small_index.path, "--record", "208", "--sample", 61785, "-k", 5, "--classes", classes, "--json"])
    wanted = {c.strip().upper() for c in classes.split(",")}
    assert {n["aami"] for n in json.loads(capsys.readouterr().out)["neighbors"]} <= wanted
