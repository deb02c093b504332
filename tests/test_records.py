"""Reading records: names, paths, leads, resampling, and every kind of bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import wfdb

from simsearch.errors import (
    AnnotationError,
    LeadNotFoundError,
    RecordFormatError,
    RecordNotFoundError,
    SignalQualityError,
)
from simsearch.signal.records import (
    DATA_ENV,
    MAX_FS,
    MIN_FS,
    check_record,
    load_record,
    read_rhythms,
    resolve_record_path,
    rhythm_at,
)


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


def test_lead_ii_when_no_mlii(tmp_path):
    """A 12-lead-style record without MLII: lead II, the nearest view to an MIT-BIH index's MLII, not
    the first lead; in EDF a label such as ``ECG II`` counts, and a named lead still wins."""
    import pyedflib

    fs, seconds = 250, 12
    t = np.arange(fs * seconds) / fs
    signals = np.column_stack([np.sin(2 * np.pi * 1.1 * t) * (0.5 + k) for k in range(3)])
    wfdb.wrsamp("twelve", fs=fs, units=["mV"] * 3, sig_name=["I", "II", "III"], p_signal=signals,
                fmt=["16"] * 3, write_dir=str(tmp_path))
    assert load_record(tmp_path / "twelve").lead == "II"
    assert load_record(tmp_path / "twelve", lead="I").lead == "I"

    writer = pyedflib.EdfWriter(str(tmp_path / "holter.edf"), 3, file_type=pyedflib.FILETYPE_EDFPLUS)
    writer.setSignalHeaders([{"label": label, "dimension": "mV", "sample_frequency": fs, "physical_max": 5.0,
                              "physical_min": -5.0, "digital_max": 32767, "digital_min": -32768}
                             for label in ("ECG I", "ECG II", "ECG V1")])
    writer.writeSamples([np.ascontiguousarray(signals[:, k]) for k in range(3)])
    writer.close()
    assert load_record(tmp_path / "holter.edf").lead == "ECG II"


def test_a_signal_in_volts_or_microvolts_is_read_in_millivolts(data_dir, tmp_path):
    """Headers naming V or uV (WFDB units, EDF physical dimension) are read in mV, as MIT-BIH's
    records are; the beats' context does not depend on the scale either way."""
    from dataclasses import replace

    import pyedflib

    from simsearch.signal.beats import beats_from_record

    mv = load_record("119", data_dir)
    signal = mv.signal[: 60 * 360]
    for unit, scale in (("uV", 1e3), ("V", 1e-3), ("NU", 1.0)):  # NU: no voltage unit, kept as it is
        wfdb.wrsamp(f"r{unit}", fs=360, units=[unit], sig_name=["MLII"], p_signal=signal[:, None] * scale,
                    fmt=["32"], adc_gain=[2e5 / (scale * np.ptp(signal))], baseline=[0], write_dir=str(tmp_path))
        np.testing.assert_allclose(load_record(tmp_path / f"r{unit}").signal, signal, atol=1e-3)
    writer = pyedflib.EdfWriter(str(tmp_path / "micro.edf"), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    writer.setSignalHeaders([{"label": "MLII", "dimension": "uV", "sample_frequency": 360, "physical_max": 5000.0,
                              "physical_min": -5000.0, "digital_max": 32767, "digital_min": -32768}])
    writer.writeSamples([np.ascontiguousarray(signal * 1e3)])
    writer.close()
    np.testing.assert_allclose(load_record(tmp_path / "micro.edf").signal, signal, atol=1e-3)

    context = beats_from_record(replace(mv, signal=signal)).context
    for scale in (1e-3, 1e3):  # the P-wave consistency once read a signal in volts as no P wave at all
        np.testing.assert_allclose(beats_from_record(replace(mv, signal=signal * scale)).context, context, atol=1e-5)


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
    with pytest.raises(RecordFormatError, match="signal file is truncated"):
        check_record(path)  # known from the header and the file's size, before any sample is read


def _write_record(tmp_path, name, signal):
    wfdb.wrsamp(name, fs=360, units=["mV"], sig_name=["MLII"], p_signal=signal[:, None], fmt=["16"],
                adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path))
    return tmp_path / name


def test_nan_signal(data_dir, tmp_path):
    """A gap of invalid samples is bridged (tests/test_gaps.py); a signal without a valid sample is refused."""
    signal = load_record("100", data_dir).signal[:36000].copy()
    signal[1000:1100] = np.nan
    gappy = load_record(_write_record(tmp_path, "gappy", signal))
    np.testing.assert_array_equal(gappy.gaps, [[1000, 1100]])
    with pytest.raises(SignalQualityError, match="NaN"):
        load_record(_write_record(tmp_path, "void", np.full(36000, np.nan)))


def test_flat_signal(tmp_path):
    with pytest.raises(SignalQualityError, match="flat"):
        load_record(_write_record(tmp_path, "flat", np.zeros(36000)))


def test_unknown_annotation_symbol(record_copy):
    """A code no WFDB table defines is refused; every code WFDB defines is known, the beats of
    other databases (B, n, r, ?) with their AAMI class."""
    from simsearch.aami import SYMBOL_TO_AAMI

    path = record_copy("100")
    data = bytearray(path.with_name("100.atr").read_bytes())
    word = int.from_bytes(data[:2], "little")  # the first annotation: 6-bit code, 10-bit time step
    data[:2] = ((45 << 10) | (word & 0x3FF)).to_bytes(2, "little")  # code 45: undefined
    path.with_name("100.atr").write_bytes(bytes(data))
    with pytest.raises(AnnotationError, match="unknown annotation symbol.*undefined code"):
        load_record(path)

    other = record_copy("101")
    ann = wfdb.rdann(str(other), "atr")
    symbols = list(ann.symbol)
    symbols[5:9] = ["B", "n", "r", "?"]
    wfdb.wrann("101", "atr", ann.sample, symbol=symbols, write_dir=str(other.parent))
    assert list(load_record(other).ann_symbols[5:9]) == ["B", "n", "r", "?"]
    assert [SYMBOL_TO_AAMI[s] for s in "Bnr?"] == ["N", "N", "V", "Q"]


def test_too_short_signal():
    from simsearch.signal.records import check_signal

    with pytest.raises(SignalQualityError, match="too short"):
        check_signal(np.sin(np.arange(10.0)), "snippet")


def _with_record_line(path, line):
    hea = path.with_suffix(".hea")
    hea.write_text("\n".join([line] + hea.read_text().splitlines()[1:]) + "\n")
    return path


@pytest.mark.parametrize("fs", [128, 1000, MIN_FS, MAX_FS])
def test_real_sampling_rates_are_accepted(record_copy, fs):
    """Holter recorders (128 Hz) and diagnostic ECGs (1000 Hz) are in the accepted range."""
    path = _with_record_line(record_copy("100", with_annotations=False), f"100 2 {fs} 650000")
    assert load_record(path).fs == fs


@pytest.mark.parametrize("field", ["0", "-360", "1", "49.9", "10001", "1e9", "nan", "inf", "fast"])
def test_sampling_rates_no_ecg_has_are_refused(record_copy, field):
    # wfdb alone reads '1e9' as 1 Hz (then a resampling to 360 Hz takes gigabytes) and '-360' as 250 Hz
    path = _with_record_line(record_copy("100", with_annotations=False), f"100 2 {field} 650000")
    with pytest.raises(RecordFormatError, match="sampling rate"):
        check_record(path)


@pytest.mark.parametrize("line, message", [("100 0 360 650000", "names no signal"),
                                           ("100 3 360 650000", "announces 3 signal"),
                                           ("100 2 360 -5", "signal length"),
                                           ("100 2 360 99999999999999", "truncated")])
def test_record_lines_that_do_not_add_up(record_copy, line, message):
    path = _with_record_line(record_copy("100", with_annotations=False), line)
    with pytest.raises(RecordFormatError, match=message):
        load_record(path)


@pytest.mark.parametrize("gain, read", [("200", -0.145), ("0", -0.145), ("-200", 0.145), ("200(995)/mV", 0.0),
                                        ("abc", None), ("200(x)", None), ("2e", None)])
def test_a_gain_field_is_a_number(record_copy, gain, read):
    """wfdb reads ``abc`` as units at the default gain and ``200(x)`` as baseline 0 without a word: such a
    header is refused. A gain of 0 is WFDB's "uncalibrated" (the default 200); a negative one turns the signal."""
    path = record_copy("100", with_annotations=False)
    hea = path.with_suffix(".hea")
    hea.write_text(hea.read_text().replace(" 212 200 ", f" 212 {gain} ", 1))
    if read is None:
        with pytest.raises(RecordFormatError, match=rf"malformed header \(gain '{re.escape(gain)}' of signal 1\)"):
            check_record(path)
    else:
        assert load_record(path).signal[0] == pytest.approx(read, abs=1e-9)


def test_a_wfdb_record_name_wfdb_cannot_read(record_copy):
    """wfdb drops other letters from a signal file's name: refused by name, not as "signal file missing"."""
    path = record_copy("100", with_annotations=False)
    renamed = path.with_name("é100")
    path.with_suffix(".dat").rename(renamed.with_suffix(".dat"))
    renamed.with_suffix(".hea").write_text(path.with_suffix(".hea").read_text().replace("100", "é100"))
    with pytest.raises(RecordFormatError, match="ASCII letters, digits"):
        load_record(renamed)


@pytest.mark.parametrize("data, samples", [(b"", 0), (b"\0\0", 0)])
def test_an_empty_annotation_file_is_a_record_without_annotations(record_copy, data, samples):
    path = record_copy("100")
    path.with_suffix(".atr").write_bytes(data)
    record = load_record(path)
    assert record.has_annotations and record.ann_samples.size == samples == record.ann_symbols.size


def test_reference_rhythms(data_dir, record_copy):
    """The rhythm notes of the ``+`` annotations, in force from each change to the next."""
    changes, names = read_rhythms("203", data_dir)
    assert changes.size == names.size > 10 and np.all(np.diff(changes) >= 0)
    assert {"AFIB", "AFL", "VT"} <= set(names)
    beats = load_record("203", data_dir)
    beats = beats.ann_samples[np.isin(beats.ann_symbols, ["N", "V"])]
    at = rhythm_at(changes, names, beats)
    assert at.shape == beats.shape and set(at) == set(names)  # every rhythm holds some beat
    assert rhythm_at(changes, names, [0, changes[1], changes[1] - 1]).tolist() == ["", names[1], names[0]]
    assert rhythm_at(changes[:0], names[:0], [5]).tolist() == [""]
    without = record_copy("100", with_annotations=False)
    assert read_rhythms(without)[0].size == 0  # no annotation file: no rhythm
    atr = record_copy("101").with_suffix(".atr")
    atr.write_bytes(atr.read_bytes()[:-1001])
    with pytest.raises(RecordFormatError, match="truncated"):
        read_rhythms(atr.with_suffix(""))


@pytest.mark.parametrize("cut", [1, 2, 1001])
def test_truncated_annotation_file(record_copy, cut):
    path = record_copy("100")
    atr = path.with_suffix(".atr")
    atr.write_bytes(atr.read_bytes()[:-cut])
    with pytest.raises(RecordFormatError, match="truncated"):
        load_record(path)


@pytest.mark.parametrize("name", ["", "  ", ".", "..", "/", "~nobody-here/..", "a\0b"])
def test_names_that_name_no_record(data_dir, name):
    with pytest.raises(RecordNotFoundError, match="not a record name"):
        resolve_record_path(name, data_dir)


def test_a_directory_or_a_path_to_nothing_is_no_record(data_dir, tmp_path):
    for name in (tmp_path, tmp_path / "nothing" / "100", "~nobody-here/100"):
        with pytest.raises(RecordNotFoundError, match="record not found"):
            resolve_record_path(name, data_dir)
