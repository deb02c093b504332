"""The Holter report's ectopy summary: ectopic patterns, pauses and heart rate from labeled beats."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import wfdb

from simsearch.aami import SYMBOL_TO_AAMI
from simsearch.label.ectopy import allorhythmia_episodes, class_runs, ectopy_summary

FS = 360.0


def labeled(sequence: str, rr_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels from a string of classes, beats ``rr_s`` apart."""
    labels = np.array(list(sequence))
    return labels, (np.arange(labels.size) * rr_s * FS).astype(np.int64) + 100


def test_runs_are_counted_by_length_and_any_other_label_ends_one():
    labels, samples = labeled("NVNVVNVVVNNVVVVVVNSSNSQS")
    starts, lengths = class_runs(labels, "V")
    assert starts.tolist() == [1, 3, 6, 11] and lengths.tolist() == [1, 2, 3, 6]
    report = ectopy_summary(labels, samples, FS)
    assert report["V"] == {"beats": 12, "isolated": 1, "couplets": 1, "runs": 2, "longest_run": 6,
                           "fastest_run_bpm": 60.0, "bigeminy": 0, "trigeminy": 0}
    assert report["S"]["couplets"] == 1 and report["S"]["isolated"] == 2  # the Q splits S Q S
    assert report["S"]["fastest_run_bpm"] is None


def test_bigeminy_and_trigeminy_need_three_cycles():
    assert allorhythmia_episodes(np.array(list("NVNVNVN")), "V", 2) == (1, 3)
    assert allorhythmia_episodes(np.array(list("NVNVNNNVNV")), "V", 2) == (0, 0)  # two cycles, twice
    assert allorhythmia_episodes(np.array(list("NVNNVNNVNNVN")), "V", 3) == (1, 4)
    assert allorhythmia_episodes(np.array(list("NVNNVNNVNN")), "V", 2) == (0, 0)
    assert allorhythmia_episodes(np.array(list("NVSVNV")), "V", 2) == (0, 0)  # an S between is no normal beat


def test_a_fast_run_reports_its_rate():
    labels, samples = labeled("NNNN")
    run = samples[-1] + (np.arange(1, 6) * 0.4 * FS).astype(np.int64)  # five beats 400 ms apart: 150 bpm
    report = ectopy_summary(np.array(list("NNNNVVVVV")), np.concatenate([samples, run]), FS)
    assert report["V"]["runs"] == 1 and report["V"]["fastest_run_bpm"] == 150.0


def test_pauses_skip_gaps_and_doubted_detections_split_none():
    labels, samples = labeled("NNNNNN")
    samples[3:] += int(2.5 * FS)  # a 3.5 s pause before the fourth beat
    report = ectopy_summary(labels, samples, FS)
    assert report["pauses"] == {"threshold_s": 2.0, "count": 1, "longest_s": 3.5, "longest_at": int(samples[3])}
    # a doubted detection inside the pause does not split it
    with_noise = np.sort(np.append(samples, samples[2] + int(1.5 * FS)))
    noisy_labels = np.array(list("NNNQNNN"))
    believed = noisy_labels != "Q"
    assert ectopy_summary(noisy_labels, with_noise, FS, believed=believed)["pauses"]["longest_s"] == 3.5
    # a gap of invalid signal inside it: the interval is not read at all
    gaps = np.array([[samples[2] + 100, samples[3] - 100]])
    report = ectopy_summary(labels, samples, FS, gaps=gaps)
    assert report["pauses"]["count"] == 0 and report["heart_rate"]["mean_bpm"] == 60.0


def test_heart_rate_extremes_are_minute_means():
    fast = np.arange(0, 60, 0.5)  # 120 bpm for a minute
    slow = 60 + np.arange(0, 120, 1.0)  # then 60 bpm for two
    samples = (np.concatenate([fast, slow]) * FS).astype(np.int64)
    rate = ectopy_summary(np.full(samples.size, "N"), samples, FS)["heart_rate"]
    assert rate["max_bpm"] == pytest.approx(120, abs=1.5) and rate["max_at"] == 0
    assert rate["min_bpm"] == 60.0 and rate["min_at"] in (int(60 * FS), int(120 * FS))
    short = ectopy_summary(np.array(["N", "N"]), np.array([0, 360]), FS)["heart_rate"]
    assert short["mean_bpm"] == 60.0 and short["min_bpm"] is None  # under half a minute covered
    assert ectopy_summary(np.array(["N"]), np.array([5]), FS)["heart_rate"]["mean_bpm"] is None
    with pytest.raises(ValueError, match="labels for"):
        ectopy_summary(np.array(["N", "V"]), np.array([5]), FS)


@pytest.mark.parametrize("record, bigeminy, ventricular_runs", [("119", 37, 0), ("207", 4, 3), ("106", 22, 1)])
def test_reference_labels_give_the_annotators_rhythm_episodes(data_dir, record, bigeminy, ventricular_runs):
    """MIT-BIH's annotators marked rhythms too: 119's 37 episodes of ventricular bigeminy and 207's 4 are
    counted from the beat labels alone (106: 22 against the annotators' 18, who join episodes one odd beat
    apart; 207's runs of three or more ventricular beats are three, the annotators marked two as tachycardia)."""
    ann = wfdb.rdann(str(data_dir / record), "atr")
    rows = [i for i, s in enumerate(ann.symbol) if s in SYMBOL_TO_AAMI]
    labels = np.array([SYMBOL_TO_AAMI[ann.symbol[i]] for i in rows])
    report = ectopy_summary(labels, ann.sample[rows], ann.fs or FS)
    marked = collections.Counter(note.strip("\x00") for note in ann.aux_note)
    assert report["V"]["bigeminy"] == bigeminy
    assert report["V"]["runs"] == ventricular_runs
    if record != "106":
        assert marked["(B"] == bigeminy


def test_annotate_reports_the_ectopy(small_index, data_dir, tmp_path, capsys):
    """106 (not in the index): its ventricular bigeminy and couplets, in the JSON and the table."""
    from simsearch import cli

    cli.main(["annotate", small_index.path, str(data_dir / "106"), "--out", str(tmp_path / "out"), "--json"])
    report = json.loads(capsys.readouterr().out)
    ventricular = report["ectopy"]["V"]
    assert ventricular["beats"] == report["by_class"]["V"] and ventricular["bigeminy"] > 5
    assert ventricular["couplets"] > 20 and 50 < report["ectopy"]["heart_rate"]["mean_bpm"] < 90
    written = json.loads((tmp_path / "out" / "106.pred.json").read_text())
    assert written["summary"]["ectopy"] == report["ectopy"]
    cli.main(["annotate", small_index.path, str(data_dir / "106"), "--out", str(tmp_path / "again")])
    printed = capsys.readouterr().out
    assert "ectopy" in printed and "bigeminy" in printed and "heart rate: mean" in printed


def test_runs_are_matched_run_by_run_within_their_category():
    """A couplet found, a short run cut to a couplet (a missed short run, a false couplet), a long run found
    with its detections a little off, a supraventricular pair the test calls normal."""
    from simsearch.evaluation.matching import match_runs, run_figures

    labels, samples = labeled("NVVNNVVVNNVVVVVVVNSSN")
    test_labels = np.array(list("NVVNNVVNNNVVVVVVVNNNN"))
    runs = match_runs(samples, labels, samples + 20, test_labels, FS)
    assert runs.shape == (2, 3, 4)
    ventricular = run_figures(runs)["V"]
    assert ventricular["couplet"] == {"n": 1, "se": 100.0, "test": 2, "ppv": 50.0}
    assert ventricular["short run"] == {"n": 1, "se": 0.0, "test": 0, "ppv": None}
    assert ventricular["long run"] == {"n": 1, "se": 100.0, "test": 1, "ppv": 100.0}
    assert run_figures(runs)["S"]["couplet"] == {"n": 1, "se": 0.0, "test": 0, "ppv": None}
    far = match_runs(samples, labels, samples + int(0.2 * FS), test_labels, FS, tolerance_s=0.15)
    assert far[1, 2, 1] == 1  # spans overlap though each beat is 200 ms off
    from rich.console import Console

    from simsearch.cli import _runs_table

    console = Console(record=True, width=120)
    console.print(_runs_table(run_figures(runs)))
    text = console.export_text()
    assert "100.0 / 50.0 (1)" in text and "short run" in text


def test_runs_are_not_read_across_ventricular_flutter():
    """EC57 leaves ventricular flutter out: the waves detected in an episode are dropped, and the ventricular
    beats either side of it are two short runs, not one long run of the reference's and another of the test's."""
    from simsearch.evaluation.detection import in_episodes
    from simsearch.evaluation.matching import match_runs, run_figures

    reference = np.array([100, 460, 820, 5000, 5360, 5720])
    test = np.sort(np.r_[reference, 2000, 2500, 3000])  # flutter waves, detected and called V
    episode = np.array([[1500, 4000]])
    assert in_episodes(test, episode).tolist() == [False] * 3 + [True] * 3 + [False] * 3
    across = run_figures(match_runs(reference, np.full(6, "V"), test, np.full(9, "V"), FS))["V"]
    assert across["long run"] == {"n": 1, "se": 100.0, "test": 1, "ppv": 100.0}
    apart = run_figures(match_runs(reference, np.full(6, "V"), test, np.full(9, "V"), FS, left_out=episode))["V"]
    assert apart["short run"] == {"n": 2, "se": 100.0, "test": 2, "ppv": 100.0}
    assert apart["long run"] == {"n": 0, "se": None, "test": 0, "ppv": None}
