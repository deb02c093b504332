"""Reading records: names, paths, leads, resampling, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from simsearch.errors import (AnnotationError, LeadNotFoundError, RecordFormatError, RecordNotFoundError,
                              SignalQualityError)
from simsearch.signal.records import DATA_ENV, load_record


def test_loads_by_name_and_by_path(data_dir):
    by_name = load_record("100", data_dir)
    by_path = load_record(str(data_dir / "100.hea"))
    assert by_name.fs == 360 and by_name.lead == "MLII"
    assert by_name.n_samples == 650000
    np.testing.assert_array_equal(by_name.signal, by_path.signal)
    assert by_name.ann_samples.shape == by_name.ann_symbols.shape and by_name.ann_samples.size > 2000


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(data_dir))
    assert load_record("101").name == "101"


def test_default_lead_is_mlii_even_when_not_first(data_dir):
    record = load_record("114", data_dir)  # leads: V5, MLII
    assert record.lead == "MLII"
    assert load_record("114", data_dir, lead="V5").lead == "V5"


def test_first_lead_when_no_mlii(data_dir):
    assert load_record("102", data_dir).lead == "V5"


def test_missing_record(data_dir):
    with pytest.raises(RecordNotFoundError, match="record not found: 999"):
        load_record("999", data_dir)


def test_missing_data_dir(tmp_path):
    with pytest.raises(RecordNotFoundError, match="data directory not found"):
        load_record("100", tmp_path / "nowhere")


def test_absent_lead(data_dir):
    with pytest.raises(LeadNotFoundError, match="no lead 'V1'"):
        load_record("100", data_dir, lead="V1")


def test_malformed_header(record_copy):
    path = record_copy("100")
    path.with_suffix(".hea").write_text("100 two 360 abc\nthis is not a signal line\n")
    with pytest.raises(RecordFormatError, match="malformed header"):
        load_record(path)


def test_truncated_signal_file(record_copy):
    path = record_copy("100")
    dat = path.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[: 100_000])
    with pytest.raises(RecordFormatError, match="truncated|cannot be read"):
        load_record(path)


def _write_record(tmp_path, name, signal):
    wfdb.wrsamp(name, fs=360, units=["mV"], sig_name=["MLII"], p_signal=signal[:, None], fmt=["16"],
                adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path))
    return tmp_path / name


def test_nan_signal(data_dir, tmp_path):
    signal = load_record("100", data_dir).signal[:36000].copy()
    signal[1000:1100] = np.nan
    with pytest.raises(SignalQualityError, match="NaN"):
        load_record(_write_record(tmp_path, "gappy", signal))


def test_flat_signal(tmp_path):
    with pytest.raises(SignalQualityError, match="flat"):
        load_record(_write_record(tmp_path, "flat", np.zeros(36000)))


def test_unknown_annotation_symbol(record_copy):
    path = record_copy("100")
    ann = wfdb.rdann(str(path), "atr")
    symbols = list(ann.symbol)
    symbols[5] = "?"  # a label no MIT-BIH table defines
    wfdb.wrann("100", "atr", ann.sample, symbol=symbols, write_dir=str(path.parent))
    with pytest.raises(AnnotationError, match="unknown annotation symbol"):
        load_record(path)


def test_too_short_signal():
    from simsearch.signal.records import check_signal

    with pytest.raises(SignalQualityError, match="too short"):
        check_signal(np.sin(np.arange(10.0)), "snippet")
