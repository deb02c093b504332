"""Calibrated noise (simsearch.signal.noise) on real records, and the detector under it.

The noise comes from the MIT-BIH Noise Stress Test Database beside the MIT-BIH copy
(``$SIMSEARCH_NSTDB`` or ../shared/data/nstdb); without it these tests are skipped,
except on CI (``CI`` set), where they fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simsearch.aami import to_aami
from simsearch.errors import ParameterError
from simsearch.evaluation.matching import match_peaks
from simsearch.signal.beats import reference_beats
from simsearch.signal.detection import detect_r_peaks
from simsearch.signal.filtering import resample
from simsearch.signal.noise import add_noise, noise_rms, qrs_amplitude, signal_to_noise_db
from simsearch.signal.records import Record, load_record

FIVE_MINUTES_S = 300


@pytest.fixture(scope="module")
def em(noise_dir: Path) -> Record:
    return load_record("em", noise_dir, annotations=None)


def first_minutes(name: str, data_dir: Path) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Signal, rate, all reference beats and the beats nst measures the signal on (not V, F, Q),
    of a record's first five minutes."""
    record = load_record(name, data_dir)
    end = int(FIVE_MINUTES_S * record.fs)
    beats, symbols = reference_beats(record)
    keep = beats < end
    beats, symbols = beats[keep], symbols[keep]
    return record.signal[:end], record.fs, beats, beats[np.isin(to_aami(symbols), ("N", "S"))]


@pytest.mark.parametrize("snr", [12.0, 0.0])
def test_add_noise_gives_the_requested_snr(snr: float, data_dir: Path, em: Record) -> None:
    # the noise goes in at 250 Hz, so it is resampled to the record's 360 Hz first
    signal, fs, _, normal = first_minutes("100", data_dir)
    noise_250 = resample(em.signal, em.fs, 250.0)
    noisy = add_noise(signal, fs, noise_250, 250.0, snr, normal, seed=7)
    assert noisy.shape == signal.shape
    assert abs(signal_to_noise_db(signal, noisy - signal, fs, normal) - snr) < 0.5


def test_add_noise_is_pure_and_seeded(data_dir: Path, em: Record) -> None:
    signal, fs, _, normal = first_minutes("100", data_dir)
    kept = signal.copy()
    first = add_noise(signal, fs, em.signal, em.fs, 6.0, normal, seed=1)
    assert np.array_equal(signal, kept)
    assert np.array_equal(first, add_noise(signal, fs, em.signal, em.fs, 6.0, normal, seed=1))
    assert not np.array_equal(first, add_noise(signal, fs, em.signal, em.fs, 6.0, normal, seed=2))


def test_a_short_noise_is_repeated_without_a_step(data_dir: Path, em: Record) -> None:
    signal, fs, _, normal = first_minutes("100", data_dir)
    short = em.signal[: int(20 * em.fs)]  # 20 s of noise for 5 minutes of ECG
    added = add_noise(signal, fs, short, em.fs, 12.0, normal) - signal
    gain = np.std(added[: short.shape[0]]) / np.std(short)
    # no sample-to-sample jump larger than the noise itself ever makes
    assert np.abs(np.diff(added)).max() <= gain * np.abs(np.diff(short)).max() + 1e-9


def test_zero_noise_or_no_beats_is_refused(data_dir: Path) -> None:
    signal, fs, _, normal = first_minutes("100", data_dir)
    with pytest.raises(ParameterError):
        add_noise(signal, fs, np.zeros(1000), fs, 12.0, normal)
    with pytest.raises(ParameterError):
        add_noise(signal, fs, np.ones(1000) + np.arange(1000) % 2, fs, 12.0, np.array([], dtype=np.int64))


def test_the_snr_definition_is_nsts(data_dir: Path, noise_dir: Path, em: Record) -> None:
    # nstdb's 118e12 is 118 plus em noise from minute 5 to 7, scaled by nst for 12 dB with
    # the QRS size of 118's first 300 normal beats and the RMS of em's first 300 seconds.
    clean, noisy = load_record("118", data_dir), load_record("118e12", noise_dir)
    beats, symbols = reference_beats(clean)
    normal = beats[np.isin(to_aami(symbols), ("N", "S"))][:300]
    fs = clean.fs
    stretch = slice(int(5 * 60 * fs), int(7 * 60 * fs))
    added = noisy.signal[stretch] - clean.signal[stretch]
    noise = em.signal[stretch]
    gain = np.polyfit(noise - noise.mean(), added - added.mean(), 1)[0]
    noise_size = noise_rms(em.signal[: 300 * int(fs)], fs)
    expected = 10 ** (-12 / 20) * qrs_amplitude(clean.signal, fs, normal) / (2 * np.sqrt(2) * noise_size)
    assert abs(20 * np.log10(gain / expected)) < 0.5


def test_detects_a_ds1_record_under_12_db_electrode_motion(data_dir: Path, em: Record) -> None:
    # 205 (DS1, not one of nstdb's own 118/119): electrode motion throughout, not only in
    # nstdb's alternate two-minute stretches
    signal, fs, beats, normal = first_minutes("205", data_dir)
    noisy = add_noise(signal, fs, em.signal, em.fs, 12.0, normal, seed=0)
    tp, fn, fp = match_peaks(beats, detect_r_peaks(noisy, fs), fs)
    se, ppv = 100.0 * tp / (tp + fn), 100.0 * tp / (tp + fp)
    assert se >= 99.0 and ppv >= 98.0, (se, ppv)
