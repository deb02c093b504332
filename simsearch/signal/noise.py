"""Calibrated noise for noise stress tests, as the MIT-BIH Noise Stress Test Database makes it.

The signal-to-noise ratio is the one of PhysioNet's ``nst`` program (which made the
nstdb records 118e24 ... 119e_6), measured as its helper ``sigamp`` measures:

* signal size ``A``: the peak-to-peak amplitude of the ECG within ±50 ms of each QRS,
  trimmed mean (the largest and smallest 5 % of the measurements left out);
* noise size ``R``: the RMS amplitude of the noise in consecutive one-second windows,
  each window's mean removed, trimmed mean the same way;
* ``SNR = 20 log10(A / (2 sqrt(2) R))`` dB, i.e. the power of a sine wave with the
  QRS's peak-to-peak amplitude (``A**2 / 8``) over the noise's power (``R**2``).

Two differences from ``nst``, both so that a test signal holds exactly the SNR asked
for: the noise size is measured on the stretch of noise actually added (``nst``
measures the first 300 s of the noise record), and every QRS given counts (``sigamp``
stops at 300). The first matters: ``em``'s first five minutes are quieter than the
rest (RMS 0.33 against 0.55 in the stretches nst added), so by this definition the
noisy stretches of nstdb's 118e12 hold 7.5 dB, not 12 (every nstdb record ~4.5 dB
below its name; ``tests/test_noise_signal.py`` checks that nst's own calibration is
reproduced). Noise covers the whole signal; nstdb's records are noisy only in
alternate two-minute stretches after five clean minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..aami import to_aami
from ..errors import ParameterError
from .filtering import resample  # SciPy, imported on first use

QRS_WINDOW_S = 0.050
"""``sigamp``'s default: the QRS's peak-to-peak amplitude is measured within ±50 ms of the beat."""
RMS_WINDOW_S = 1.0
"""``sigamp``'s default: the noise's RMS is measured in consecutive one-second windows."""
TRIM_FRACTION = 0.05
"""``sigamp`` leaves out this fraction of the largest and of the smallest measurements."""
NSTDB_SOURCES: tuple[str, ...] = ("118", "119")
"""The MIT-BIH records the nstdb's noisy records are copies of: never given noise for training, so that
those records stay an out-of-sample noise test (:mod:`simsearch.evaluation.noise`)."""
NSTDB_DIR = "nstdb"
"""Where the Noise Stress Test Database is looked for unless named: a directory of this name beside the data
directory (``../shared/data/nstdb`` beside ``../shared/data/mitdb``), see :func:`nstdb_beside`."""


def nstdb_beside(data_dir) -> Path:
    """The :data:`NSTDB_DIR` directory beside the data directory ``data_dir`` (which need not exist)."""
    return Path(data_dir).expanduser().resolve().parent / NSTDB_DIR


def nstdb_dir(noise_dir, data_dir) -> Path:
    """``noise_dir`` where one is named, else :func:`nstdb_beside` ``data_dir`` (neither need exist)."""
    return Path(noise_dir).expanduser() if noise_dir is not None else nstdb_beside(data_dir)


NOISE_LEADS = ("noise1", "noise2")
"""The two signals of an nstdb noise record: ``nst`` adds the first to a record's first lead, the second
to its other."""


def sized_beats(samples: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """The beats a record's ECG size is measured on, as ``nst`` takes them: all but
    ventricular, fusion and unclassifiable beats (all of them if that leaves none).

    Parameters
    ----------
    samples, symbols : ndarray, shape (n,)
        Reference beat positions and their MIT-BIH symbols.
    """
    samples = np.asarray(samples)
    normal = ~np.isin(to_aami(np.asarray(symbols)), ("V", "F", "Q"))
    return samples[normal] if normal.any() else samples


def qrs_amplitude(signal: np.ndarray, fs: float, r_peaks: np.ndarray) -> float:
    """Typical peak-to-peak QRS amplitude: the trimmed mean over the beats, as ``sigamp -a``.

    Parameters
    ----------
    signal : numpy.ndarray
        The clean ECG, one lead.
    fs : float
        Sampling rate in Hz.
    r_peaks : numpy.ndarray
        QRS positions (samples). ``nst`` takes the beats it calls normal (all but
        ventricular, fusion and unclassifiable ones); beats near the signal's ends
        are measured on the part of the window inside it.

    Returns
    -------
    float
        Amplitude in the signal's units.

    Raises
    ------
    ParameterError
        No QRS position inside the signal.
    """
    signal = np.asarray(signal, dtype=np.float64)
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    r_peaks = r_peaks[(r_peaks >= 0) & (r_peaks < signal.shape[0])]
    if r_peaks.size == 0:
        raise ParameterError("no QRS position inside the signal to measure its amplitude from")
    half = max(1, int(round(QRS_WINDOW_S * fs)))
    windows = np.clip(r_peaks[:, None] + np.arange(-half, half + 1)[None, :], 0, signal.shape[0] - 1)
    return _trimmed_mean(np.ptp(signal[windows], axis=1))


def noise_rms(noise: np.ndarray, fs: float) -> float:
    """Typical RMS amplitude of a noise signal: the trimmed mean over one-second windows, as ``sigamp -r``.

    Each window's own mean is removed first, so a slow drift does not count as noise
    power. A signal shorter than one window is measured as one window.
    """
    noise = np.asarray(noise, dtype=np.float64)
    width = max(1, int(round(RMS_WINDOW_S * fs)))
    count = max(1, noise.shape[0] // width)
    windows = noise[: count * width].reshape(count, -1)
    return _trimmed_mean(np.sqrt(np.mean((windows - windows.mean(axis=1, keepdims=True)) ** 2, axis=1)))


def signal_to_noise_db(signal: np.ndarray, noise: np.ndarray, fs: float, r_peaks: np.ndarray) -> float:
    """Signal-to-noise ratio of ``signal`` plus ``noise`` in dB, by ``nst``'s definition.

    ``signal`` is the clean ECG and ``noise`` what is (or was) added to it, both at
    ``fs``; ``r_peaks`` as for :func:`qrs_amplitude`.
    """
    return float(20.0 * np.log10(qrs_amplitude(signal, fs, r_peaks) / (2.0 * np.sqrt(2.0) * noise_rms(noise, fs))))


def add_noise(
    signal: np.ndarray,
    fs: float,
    noise: np.ndarray,
    noise_fs: float,
    snr_db: float,
    r_peaks: np.ndarray,
    seed: int | None = None,
) -> np.ndarray:
    """The ECG with noise added at a given signal-to-noise ratio (``nst``'s definition).

    Parameters
    ----------
    signal : numpy.ndarray
        The clean ECG, one lead, at ``fs`` Hz.
    fs : float
        Sampling rate of ``signal`` in Hz.
    noise : numpy.ndarray
        A noise recording, e.g. one lead of nstdb's ``em`` (electrode motion), ``ma``
        (muscle) or ``bw`` (baseline wander), at ``noise_fs`` Hz.
    noise_fs : float
        Sampling rate of ``noise``; resampled to ``fs`` when the two differ.
    snr_db : float
        The signal-to-noise ratio wanted, in dB (nstdb: 24, 18, 12, 6, 0, -6).
    r_peaks : numpy.ndarray
        QRS positions in ``signal`` from which its size is measured (see
        :func:`qrs_amplitude`).
    seed : int, optional
        Chooses where in the noise recording the added stretch starts. ``None`` starts
        at its beginning, as ``nst`` does.

    Returns
    -------
    numpy.ndarray
        ``signal`` plus the scaled noise, float64, same length. A noise recording
        shorter than the signal is repeated, each repeat shifted to start where the
        last one ended (``nst`` "rewinds" it the same way), so no step is added.

    Raises
    ------
    ParameterError
        Empty or non-finite noise, a noise of zero amplitude, or no QRS to measure.
    """
    signal = np.asarray(signal, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.size == 0 or not np.all(np.isfinite(noise)):
        raise ParameterError("the noise recording is empty or holds non-finite values")
    noise = resample(noise, noise_fs, fs)
    start = 0 if seed is None else int(np.random.default_rng(seed).integers(noise.shape[0]))
    stretch = _continued(noise, start, signal.shape[0])
    rms = noise_rms(stretch, fs)
    if rms == 0.0:
        raise ParameterError("the noise recording has zero amplitude: it cannot be scaled to an SNR")
    gain = 10.0 ** (-snr_db / 20.0) * qrs_amplitude(signal, fs, r_peaks) / (2.0 * np.sqrt(2.0) * rms)
    return signal + gain * (stretch - stretch.mean())


def _continued(noise: np.ndarray, start: int, length: int) -> np.ndarray:
    """``length`` samples of ``noise`` from ``start`` on, wrapping round to its beginning as often
    as needed, each time offset to go on from the sample before (no step where it wraps)."""
    t = start + np.arange(length)
    laps, at = np.divmod(t, noise.shape[0])
    return noise[at] + (noise[-1] - noise[0]) * laps


def _trimmed_mean(values: np.ndarray) -> float:
    """Mean without the largest and smallest :data:`TRIM_FRACTION` of the values (``sigamp``'s rule)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    low = int(values.shape[0] * TRIM_FRACTION)
    return float(values[low : values.shape[0] - low].mean())
