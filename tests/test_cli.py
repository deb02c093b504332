"""The command line as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from simsearch.signal.records import load_record


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "simsearch", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def assert_one_line_error(proc, pattern):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and pattern in lines[0]


@pytest.fixture(scope="module")
def cli_index(data_dir, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("cli") / "idx"
    proc = run("build", index_dir, "--data-dir", data_dir, "--records", "119,208", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["records"] == 2 and report["beats"] > 4000
    return index_dir


def test_query_json_has_the_documented_shape(cli_index, data_dir):
    rec = load_record("208", data_dir)
    sample = int(rec.ann_samples[rec.ann_symbols == "V"][3])
    proc = run("query", cli_index, "--record", "208", "--sample", sample, "-k", "5", "--exclude-record", "--json")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["query"]["record"] == "208" and answer["query"]["sample"] == sample
    assert len(answer["neighbors"]) == 5
    for n in answer["neighbors"]:
        assert {"record", "sample", "symbol", "aami", "distance"} <= set(n) and n["record"] == "119"
    assert set(answer["vote"]) == {"label", "confidence", "scores"} and answer["vote"]["label"] in "NSVFQ"


def test_query_table_and_info(cli_index):
    proc = run("query", cli_index, "--record", "119", "--sample", 20000, "-k", "3")
    assert proc.returncode == 0 and "vote:" in proc.stdout and "distance" in proc.stdout
    info = run("info", cli_index, "--json")
    assert info.returncode == 0
    details = json.loads(info.stdout)
    assert details["records"] == ["119", "208"] and details["catalog"]["beats"] == details["n_vectors"]


def test_query_uses_the_env_data_dir_for_records_outside_the_index(cli_index, data_dir):
    proc = run("query", cli_index, "--record", "100", "--sample", 1000, "-k", "2", "--json",
               env={"SIMSEARCH_DATA": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["query"]["record"] == "100"


def test_bad_inputs_give_one_line_and_exit_2(cli_index, data_dir, tmp_path):
    assert_one_line_error(run("query", cli_index, "--record", "119", "--sample", 99999999), "outside the record")
    assert_one_line_error(run("query", cli_index, "--record", "nope", "--sample", 1, "--data-dir", data_dir),
                          "record not found")
    assert_one_line_error(run("query", tmp_path / "missing", "--record", "119", "--sample", 1), "index not found")
    assert_one_line_error(run("build", tmp_path / "i", "--data-dir", tmp_path / "nodata", "--records", "100"),
                          "data directory not found")
    assert_one_line_error(run("build", tmp_path / "i", "--data-dir", data_dir, "--records", "100", "--lead", "V9"),
                          "no lead 'V9'")
    for ext in ("hea", "dat"):
        shutil.copy(data_dir / f"100.{ext}", tmp_path / f"100.{ext}")
    (tmp_path / "100.hea").write_text("garbage header\n")
    assert_one_line_error(run("build", tmp_path / "i", "--records", tmp_path / "100"), "malformed header")
    assert not (tmp_path / "i").exists()


def test_wrong_encoder_is_refused(cli_index, tmp_path):
    from simsearch.model.encoder import Encoder, build_encoder

    Encoder(build_encoder(seed=11)).save(tmp_path / "other.keras")
    proc = run("query", cli_index, "--record", "119", "--sample", 1000, "--encoder", tmp_path / "other.keras")
    assert_one_line_error(proc, "was built with encoder")
