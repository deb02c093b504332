"""Holter input and Holter scale, on a few minutes of real signal (never 24 hours here).

* EDF+ input: MIT-BIH records written as EDF+ by ``scripts/make_holter.py`` (pyedflib,
  both leads, every annotation) read back by :func:`load_record`: the same signal
  within EDF's quantisation, the same annotations, a lead by name, any rate, names in
  the data directory; bad EDF files are one error line.
* Batched searches with the query's own record excluded, without per-query
  selectors, give what the selector-based search gives; the pruned exact kNN
  (:mod:`simsearch.store.exact`) gives what a flat search gives.
* ``annotate`` of a two-record concatenation, stderr piped, shows one line per stage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyedflib
import pytest
from conftest import REPO

from simsearch.cli import main
from simsearch.errors import LeadNotFoundError, RecordFormatError, RecordNotFoundError, SampleOutOfRangeError
from simsearch.label.annotate import STAGES
from simsearch.signal.records import check_record, load_record, other_lead, record_name
from simsearch.store.exact import ExactKnn, flat_knn

MAKE_HOLTER = REPO / "scripts" / "make_holter.py"
QUANTUM_MV = 40.0 / 65535
"""One EDF step of make_holter's files (16 bits over +-20 mV)."""


def make_holter(out: Path, *more: str) -> None:
    subprocess.run([sys.executable, str(MAKE_HOLTER), "--out", str(out), *more], check=True, capture_output=True,
                   timeout=300)


@pytest.fixture(scope="module")
def holter(tmp_path_factory, data_dir) -> Path:
    """119 then 208, the first 2 minutes of each, MLII and V1, as WFDB and EDF+ (``h.hea`` ..., ``h.edf``)."""
    out = tmp_path_factory.mktemp("holter")
    make_holter(out, "--data-dir", str(data_dir), "--records", "119,208", "--record-minutes", "2",
                "--hours", str(4 / 60), "--name", "h")
    return out


def wfdb_reference(data_dir, name: str, seconds: float, lead: str = "MLII"):
    """(signal centred on its median as make_holter centres what it takes, annotation samples, symbols) of a
    record's first ``seconds``."""
    import wfdb

    rec = wfdb.rdrecord(str(data_dir / name), sampto=int(seconds * 360))
    channel = list(rec.sig_name).index(lead)
    signal = rec.p_signal[:, channel] - np.median(rec.p_signal[:, channel])
    ann = wfdb.rdann(str(data_dir / name), "atr", sampto=int(seconds * 360))
    return signal, np.asarray(ann.sample), np.asarray(ann.symbol)


def test_edf_round_trip_same_signal_annotations_and_leads(holter, data_dir):
    edf = load_record(holter / "h.edf")
    assert (edf.name, edf.lead, edf.fs, edf.n_samples) == ("h", "MLII", 360.0, 2 * 2 * 60 * 360)
    first, samples_119, symbols_119 = wfdb_reference(data_dir, "119", 120)
    second, samples_208, symbols_208 = wfdb_reference(data_dir, "208", 120)
    assert np.abs(edf.signal - np.concatenate([first, second])).max() <= QUANTUM_MV
    assert np.array_equal(edf.ann_samples, np.concatenate([samples_119, samples_208 + 120 * 360]))
    assert list(edf.ann_symbols) == list(symbols_119) + list(symbols_208)
    v1 = load_record(holter / "h.edf", lead="V1")
    assert v1.lead == "V1"
    assert np.abs(v1.signal[:43200] - wfdb_reference(data_dir, "119", 120, "V1")[0]).max() <= QUANTUM_MV
    wfdb_copy = load_record(holter / "h")  # the WFDB twin make_holter wrote beside it
    assert np.abs(wfdb_copy.signal - edf.signal).max() <= QUANTUM_MV
    assert np.array_equal(wfdb_copy.ann_samples, edf.ann_samples)
    assert load_record(holter / "h.edf", annotations=None).ann_samples is None


def test_edf_names_in_the_data_dir_and_lead_errors(holter, tmp_path):
    only_edf = tmp_path / "data"
    only_edf.mkdir()
    os.link(holter / "h.edf", only_edf / "rec1.edf")
    for name in ("rec1", "rec1.edf"):
        assert load_record(name, only_edf).path == str((only_edf / "rec1.edf").resolve())
    assert record_name(only_edf / "rec1.edf") == "rec1"
    assert check_record("rec1.edf", only_edf, "V1") == (only_edf / "rec1.edf").resolve()
    assert other_lead("rec1", only_edf) == other_lead(holter / "h") == "V1"  # EDF and WFDB alike
    with pytest.raises(LeadNotFoundError, match="no lead 'V5'.*MLII, V1"):
        check_record("rec1", only_edf, "V5")
    with pytest.raises(RecordNotFoundError):
        load_record("rec2.edf", only_edf)


def test_edf_at_a_holter_rate_keeps_its_rate(tmp_path, data_dir):
    make_holter(tmp_path, "--data-dir", str(data_dir), "--records", "208", "--record-minutes", "1",
                "--hours", str(1 / 60),
                "--fs", "128", "--name", "slow", "--formats", "edf")
    record = load_record(tmp_path / "slow.edf")
    assert (record.fs, record.n_samples) == (128.0, 60 * 128)
    _, samples, symbols = wfdb_reference(data_dir, "208", 60)
    expected = np.round(samples * 128 / 360).astype(np.int64)
    assert np.array_equal(record.ann_samples, expected[expected < 60 * 128])
    assert list(record.ann_symbols) == list(symbols[expected < 60 * 128])


def test_edf_written_by_pyedflib_without_symbols_has_no_annotations(tmp_path, data_dir):
    """Free-text EDF+ annotations (events, comments) are not beat annotations."""
    x = load_record("100", data_dir).signal[:3600]
    path = tmp_path / "events.edf"
    writer = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    writer.setSignalHeaders([{"label": "ECG1", "dimension": "mV", "sample_frequency": 360, "physical_min": -10.0,
                              "physical_max": 10.0, "digital_min": -32768, "digital_max": 32767, "transducer": "",
                              "prefilter": ""}])
    writer.writeSamples([np.ascontiguousarray(x)])
    writer.writeAnnotation(1.0, -1, "Recording starts")
    writer.writeAnnotation(5.0, 2.0, "patient walking")
    writer.close()
    record = load_record(path)
    assert record.lead == "ECG1" and record.ann_samples is None
    assert np.abs(record.signal - x).max() <= 20.0 / 65535


@pytest.mark.parametrize("content,message", [
    (b"", "not an EDF file"),
    (b"this is not an EDF file at all" * 20, "not an EDF file"),
    ("truncated", "EDF file is truncated"),
    ("bad records", "malformed header"),
    ("no duration", "no duration"),
])
def test_bad_edf_is_one_error_line(tmp_path, holter, small_index, capsys, content, message):
    bad = tmp_path / "bad.edf"
    data = (holter / "h.edf").read_bytes()
    if content == "truncated":
        content = data[: len(data) // 2]
    elif content == "bad records":
        content = data[:236] + b"12x45678" + data[244:]
    elif content == "no duration":  # a data record of 0 s: pyedflib would divide by it
        content = data[:244] + b"0       " + data[252:]
    bad.write_bytes(content)
    with pytest.raises(RecordFormatError, match=message):
        load_record(bad)
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", str(small_index.path), str(bad), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bad.edf: ") and message in lines[0]


def test_annotate_a_concatenation_shows_each_stage_when_piped(holter, small_index, tmp_path):
    out = tmp_path / "labels"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "simsearch", "annotate", str(small_index.path),
                           str(holter / "h.edf"), "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("annotate h: ")]
    assert [line.split(": ", 1)[1].split(" ")[0] for line in lines] == list(STAGES), proc.stderr
    assert all(" s" in line and "peak RSS" in line for line in lines)
    assert (out / "h.pred").is_file() and (out / "h.pred.csv").is_file()
    assert "\x1b" not in proc.stderr  # no progress bar residue in a log


# ---------------------------------------------------------------- batched search, exact
def stored_vectors(index):
    x, ids = index.vectors.arrays()
    table_ids, _, records = index.label_table()
    return x, ids, records[np.searchsorted(table_ids, ids)]


def assert_same_neighbors(found, expected, tolerance=1e-5, distances=True):
    """Same distances (squared: to float32 rounding of the inner products; or inner products
    themselves, relatively) and the same ids, except where equal values may swap."""
    (d1, i1), (d2, i2) = found, expected
    if distances:
        d1, d2 = np.square(d1), np.square(d2)
    else:
        tolerance = tolerance * max(1.0, float(np.abs(d2[np.isfinite(d2)]).max()))
    assert np.allclose(d1, d2, atol=tolerance, rtol=0)
    ties = np.zeros_like(d2, dtype=bool)
    ties[:, 1:] |= np.abs(np.diff(d2, axis=1)) < tolerance
    ties[:, :-1] |= np.abs(np.diff(d2, axis=1)) < tolerance
    ties[:, -1] = True  # the k-th may be one of several equal ones
    assert (i1 == i2)[~ties].all()
    assert np.mean(i1 == i2) > 0.99


@pytest.mark.parametrize("record", ["208", "100"])
def test_batched_own_record_exclusion_equals_the_selector_search(small_index, record):
    x, ids, records = stored_vectors(small_index)
    queries = x[records == record]
    assert len(queries) >= 64  # the batched path
    batched = small_index.search(queries, 100, exclude_records=[record])
    table_ids, classes, table_records = small_index.label_table()
    allowed = (classes >= 0) & (table_records != record)
    similarity, selected = small_index._search_selected(queries, 100, allowed)  # the per-vector selector path
    expected = (np.where(selected >= 0, np.sqrt(np.clip(2 - 2 * similarity.astype(np.float64), 0, 4)), np.inf),
                selected)
    assert_same_neighbors(batched, expected)
    assert not np.isin(batched[1], ids[records == record]).any()
    one_by_one = [small_index.search(q, 100, exclude_records=[record]) for q in queries[:20]]
    assert_same_neighbors((np.vstack([d for d, _ in one_by_one]), np.vstack([i for _, i in one_by_one])),
                          (batched[0][:20], batched[1][:20]))


def test_batched_search_of_the_whole_index_prunes_and_stays_exact(small_index):
    """10^4 queries against 10^4 vectors: the pruned path, with a record and a class excluded."""
    x, ids, records = stored_vectors(small_index)
    assert len(x) >= 4096
    found = small_index.search(x, 50, exclude_records=["209"], classes=["N", "V", "F", "Q"])
    table_ids, classes, table_records = small_index.label_table()
    allowed = (classes >= 0) & (table_records != "209") & (classes != 1)
    similarity, selected = small_index._search_selected(x[::7], 50, allowed)
    expected = (np.where(selected >= 0, np.sqrt(np.clip(2 - 2 * similarity.astype(np.float64), 0, 4)), np.inf),
                selected)
    assert_same_neighbors((found[0][::7], found[1][::7]), expected)


@pytest.mark.parametrize("unit", [True, False])
def test_pruned_exact_knn_equals_flat_search(unit):
    """Clustered data like beats (and, the bound not assuming it, vectors of any norm), with a filter."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 32))
    x = (centres[rng.integers(0, 40, 12000)] + 0.35 * rng.normal(size=(12000, 32))).astype(np.float32)
    if unit:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:6000] + 0.05 * rng.normal(size=(6000, 32)).astype(np.float32)
    allowed = rng.random(12000) > 0.3
    exact = ExactKnn(x)
    for k, mask in ((10, None), (100, allowed)):
        sims, rows = exact.search(queries, k, mask)
        assert exact.clustered
        stored = x if mask is None else x[mask]
        flat_sims, flat_rows = flat_knn(queries, stored, k)
        if mask is not None:
            flat_rows = np.flatnonzero(mask)[flat_rows]
        assert_same_neighbors((sims, rows), (flat_sims, flat_rows), tolerance=1e-5, distances=False)
        if mask is not None:
            assert mask[rows].all()


def test_pruned_search_pads_when_a_filter_leaves_fewer_than_k():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    allowed = np.zeros(5000, dtype=bool)
    allowed[[3, 77, 4000]] = True
    sims, rows = ExactKnn(x).search(x[:4500], 5, allowed)
    assert (np.sort(rows[:, :3], axis=1) == [3, 77, 4000]).all()
    assert (rows[:, 3:] == -1).all() and np.isinf(sims[:, 3:]).all()


def test_reference_beats_come_from_the_edf_annotations(holter, tmp_path):
    from simsearch.errors import AnnotationError
    from simsearch.label.annotate import read_beats

    record, beats, reference = read_beats(holter / "h.edf", beats="reference")
    is_beat = np.isin(record.ann_symbols, list("NLRejAaJSVEF/fQ"))
    assert np.array_equal(beats.samples, record.ann_samples[is_beat])
    assert set(reference) <= set("NSVFQ") and (reference == "V").sum() > 50  # 119 and 208: many VEBs
    bare = tmp_path / "bare.edf"
    writer = pyedflib.EdfWriter(str(bare), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    writer.setSignalHeaders([{"label": "II", "dimension": "mV", "sample_frequency": 250, "physical_min": -10.0,
                              "physical_max": 10.0, "digital_min": -32768, "digital_max": 32767, "transducer": "",
                              "prefilter": ""}])
    writer.writeSamples([np.ascontiguousarray(np.resize(record.signal[:2500], 2500))])
    writer.close()
    with pytest.raises(AnnotationError, match="no annotation in bare.edf with an MIT-BIH symbol"):
        read_beats(bare, beats="reference")


@pytest.mark.parametrize("name", ["h", "h.edf"])
def test_a_span_of_a_recording_is_its_slice(holter, name):
    whole = load_record(holter / name)
    part = load_record(holter / name, span_s=(100.0, 150.5))
    assert (part.start, part.n_samples, part.span_s) == (36000, 18180, (100.0, 150.5))
    np.testing.assert_array_equal(part.signal, whole.signal[36000:36000 + 18180])
    inside = (whole.ann_samples >= 36000) & (whole.ann_samples < 36000 + 18180)
    np.testing.assert_array_equal(part.ann_samples + part.start, whole.ann_samples[inside])
    assert list(part.ann_symbols) == list(whole.ann_symbols[inside])
    end = load_record(holter / name, span_s=(230.0, 1e6))  # cut to the recording
    assert end.start + end.n_samples == whole.n_samples
    other = load_record(holter / name, lead="V1", span_s=part.span_s)  # the other lead's same seconds
    assert (other.start, other.n_samples) == (part.start, part.n_samples)
    for bad in [(300.0, 400.0), (50.0, 50.0), (float("nan"), 10.0), ("a", "b")]:
        with pytest.raises(SampleOutOfRangeError):
            load_record(holter / name, span_s=bad)

