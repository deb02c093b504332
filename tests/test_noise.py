"""The noise task (`evaluate --task noise`) on real nstdb records and real added noise.

One small index (three DS1 records, neither 118 nor 119), one or two SNRs, one added
record: each test stays within seconds to tens of seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_evaluation import SearchSpy

from simsearch import BeatIndex, cli
from simsearch.evaluation.matching import match_peaks
from simsearch.evaluation.noise import (
    NOISE_INDEX_RECORDS,
    NOISE_LEADS,
    NOISE_RECORD,
    NSTDB_SNRS_DB,
    NSTDB_SOURCES,
    check_snrs,
    evaluate_noise,
    noise_leads,
    noisy_copies,
    noisy_lead,
    nstdb_name,
)
from simsearch.signal.beats import detect_beats, reference_beats
from simsearch.signal.noise import signal_to_noise_db, sized_beats
from simsearch.signal.records import load_record

NOISE_INDEX = ["101", "208", "209"]
"""DS1 records without 118 and 119: N, S (209), V and F (208)."""


@pytest.fixture(scope="session")
def noise_index(data_dir, tmp_path_factory) -> BeatIndex:
    return BeatIndex.build(tmp_path_factory.mktemp("idx") / "noise", NOISE_INDEX, data_dir)


def test_nstdb_names_and_snrs():
    assert [nstdb_name("118", s) for s in NSTDB_SNRS_DB] == ["118e24", "118e18", "118e12", "118e06", "118e00",
                                                            "118e_6"]
    assert check_snrs([6, -6, 6]) == [6, -6]
    for bad in ([], [5], [24, 30]):
        with pytest.raises(ValueError, match="SNRs must be some of 24, 18, 12, 6, 0, -6"):
            check_snrs(bad)
    assert not set(NOISE_INDEX_RECORDS) & set(NSTDB_SOURCES) and len(NOISE_INDEX_RECORDS) == 20


def test_noise_is_added_to_both_leads_as_nst_adds_it(data_dir, noise_dir, tmp_path):
    """Each lead gets its own signal of the noise record at the SNR asked for, measured on that lead;
    the copy keeps the clean record's name and reference annotations."""
    clean = load_record("100", data_dir)
    noise = noise_leads(NOISE_RECORD, noise_dir)
    assert [lead.lead for lead in noise] == list(NOISE_LEADS)
    (snr, noisy), = noisy_copies(clean, noise, [12], seed=0, folder=tmp_path)
    # what the evaluation writes is what cross-validation's "em12dB" adds in memory (one rule: noisy_lead)
    in_memory = noisy_lead(clean, 0, noise, 12, clean, seed=0)
    assert np.allclose(noisy.signal, in_memory.signal, atol=1e-3)  # WFDB rounding: 4e-5 mV
    assert not np.allclose(noisy.signal, clean.signal, atol=0.01)
    assert snr == 12 and noisy.name == "100" and noisy.lead == "MLII" and noisy.path.startswith(str(tmp_path))
    assert np.array_equal(noisy.ann_samples, clean.ann_samples)
    r_peaks = sized_beats(*reference_beats(clean))
    for lead in ("MLII", "V5"):  # 100's leads
        before, after = load_record("100", data_dir, lead=lead), load_record(noisy.path, lead=lead, annotations=None)
        assert abs(signal_to_noise_db(before.signal, after.signal - before.signal, clean.fs, r_peaks) - 12) < 0.1


def test_noise_task_scores_nstdb_and_added_noise(noise_index, data_dir, noise_dir):
    """QRS figures are the detector's on each noisy record; noise costs Se/+P; the
    noisy copies of 118 never have 118 (or themselves) vote (that the added noise is seeded is
    tests/test_noise_signal.py's)."""
    spy = SearchSpy(noise_index)
    report = evaluate_noise(spy, data_dir, noise_dir, records=["100"], snrs=[24, -6])
    assert report["snrs"] == [24, -6] and report["noise_record"] == "em"
    nstdb, added = report["nstdb"], report["added"]
    assert nstdb["records"] == ["118e24", "118e_6", "119e24", "119e_6"] and added["records"] == ["100"]
    assert list(nstdb["rows"]) == list(added["rows"]) == ["clean", "24", "-6"]
    assert {"118e24", "118"} in [excluded for excluded, _ in spy.calls]
    assert set().union(*(answered for _, answered in spy.calls)) <= set(NOISE_INDEX)

    counts = np.zeros(3, dtype=int)
    for name in ("118e_6", "119e_6"):  # the pooled QRS counts are the detector's, record by record
        record = load_record(name, noise_dir)
        counts += match_peaks(reference_beats(record)[0], detect_beats(record), record.fs)
    qrs = nstdb["rows"]["-6"]["qrs"]
    assert [qrs["tp"], qrs["fn"], qrs["fp"]] == counts.tolist()
    n_reference = sum(len(reference_beats(load_record(s, data_dir))[0]) for s in NSTDB_SOURCES)
    for table in (nstdb, added):
        clean, worst = table["rows"]["clean"], table["rows"]["-6"]
        if table is nstdb:
            assert all(r["qrs"]["tp"] + r["qrs"]["fn"] == n_reference for r in table["rows"].values())
        assert clean["qrs"]["se"] > 99 and clean["qrs"]["ppv"] > 98
        assert worst["qrs"]["ppv"] < clean["qrs"]["ppv"] - 10  # electrode motion mimics beats
        assert worst["classes"]["N"]["se"] < clean["classes"]["N"]["se"]
        for row in table["rows"].values():  # per record (by the clean record's name) and per rhythm, adding up
            assert list(row["per_record"]) == (["118", "119"] if table is nstdb else ["100"])
            assert sum(r["beats"] for r in row["per_record"].values()) == \
                sum(r["beats"] for r in row["per_rhythm"].values())
        assert clean["per_record"] != worst["per_record"]
    print(f"QRS Se/+P clean {added['rows']['clean']['qrs']}, -6 dB {added['rows']['-6']['qrs']}")


def test_noise_task_refuses_an_index_holding_a_scored_record(small_index, noise_index, data_dir, noise_dir):
    with pytest.raises(ValueError, match=r"overlap the index: \['119'\]"):  # the conftest index holds 119
        evaluate_noise(small_index, data_dir, noise_dir, snrs=[24])
    with pytest.raises(ValueError, match=r"overlap the index: \['208'\]"):
        evaluate_noise(noise_index, data_dir, noise_dir, records=[str(data_dir / "208")], snrs=[24])


def test_cli_noise_task_json_and_table(data_dir, monkeypatch, capsys):
    """The command line with the default noise directory (nstdb beside the data), an index of
    both leads; the index is made smaller here (the real one is all of NOISE_INDEX_RECORDS)."""
    monkeypatch.setattr("simsearch.evaluation.noise.NOISE_INDEX_RECORDS", tuple(NOISE_INDEX))
    cli.main(["evaluate", "--task", "noise", "--data-dir", str(data_dir), "--records", "100", "--snrs", "0",
              "--leads", "both", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "noise" and report["index_records"] == NOISE_INDEX and report["leads"] == "both"
    assert list(report["added"]["rows"]) == ["clean", "0"] and report["added"]["records"] == ["100"]
    cli._print_noise(report, as_json=False)
    text = capsys.readouterr().out
    assert "nstdb 118, 119" in text and "1 test records with em noise" in text and "QRS +P" in text
    assert "nstdb 118, 119, per record" in text and "test records with em noise, per record" in text
    assert "per reference rhythm" in text


def test_cli_noise_task_bad_input_is_one_line(data_dir, noise_dir, tmp_path, capsys):
    """A missing or incomplete noise directory, or an SNR the nstdb lacks: one error line, exit 2."""
    mitdb = tmp_path / "mitdb"
    mitdb.mkdir()
    for name in ("100", "118", "119"):
        for ext in ("hea", "dat", "atr"):
            (mitdb / f"{name}.{ext}").symlink_to(data_dir / f"{name}.{ext}")
    partial = tmp_path / "partial"
    partial.mkdir()
    for ext in ("hea", "dat"):
        (partial / f"em.{ext}").symlink_to(noise_dir / f"em.{ext}")
    cases = [
        ((("--data-dir", mitdb, "--records", "100")), f"noise stress test directory not found: '{tmp_path / 'nstdb'}'"),
        (("--data-dir", data_dir, "--noise-dir", tmp_path / "nope"), "noise stress test directory not found"),
        (("--data-dir", data_dir, "--noise-dir", partial, "--snrs", "6"), f"record not found: 118e06 in {partial}"),
        (("--data-dir", data_dir, "--snrs", "5,-6"), "SNRs must be some of"),
        (("--data-dir", data_dir, "--snrs", "6,x"), "--snrs must be a comma list of integers"),
        (("--data-dir", data_dir, "--records", "118"), "overlap DS1"),
    ]
    for args, message in cases:  # in this process: test_bad_input runs the command line as a user does
        with pytest.raises(SystemExit) as exit_:
            cli.main(["evaluate", "--task", "noise", *map(str, args)])
        stderr = capsys.readouterr().err
        assert exit_.value.code == 2, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, stderr)
