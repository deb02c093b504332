"""Reading records: file in, arrays out. WFDB records, and EDF/EDF+ files (:mod:`.edf`).

A record is named either by a path (``data/100``, ``data/100.hea``, ``holter/rec1.edf``)
or by a bare name looked up in the data directory (``--data-dir`` or ``SIMSEARCH_DATA``):
``100`` finds ``100.hea``, else ``100.edf``. Either way it is known by its name (``rec1``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..aami import check_symbols, parse_record_list
from ..errors import (
    LeadNotFoundError,
    ParameterError,
    RecordFormatError,
    RecordNotFoundError,
    SampleOutOfRangeError,
    SignalQualityError,
    reason,
)
from . import edf
from .filtering import resample

DATA_ENV = "SIMSEARCH_DATA"
PREFERRED_LEADS = ("MLII", "II")
"""Leads read when none is named, in this order (names compared without case, spaces, dashes
and an ``ECG``/``EKG`` prefix, so an EDF label ``ECG II`` is lead II); else the first lead.
The packaged encoder and MIT-BIH indexes hold MLII (modified limb lead II), so on a record
without it, the nearest view is lead II: beats of another lead look different to an index
of MLII beats. Cross-validation inside DS1 (``scripts/cross_validate.py`` protocol, encoder
trained on MLII) scores the held-out patients 81.4 on MLII and 76.2 on their other lead
(V1 in most records), VEB +P 77 against 60."""

SECOND_LEAD_ORDER = ("V1", "V2", "V4", "V5", "V3", "V6")
"""The lead paired with the first in an index of both leads (:func:`other_lead`), in this
order, else the record's first other lead: the second leads of MIT-BIH, whose beats that
index holds (V1 in 40 of its 48 records, V2, V4 or V5 in the others; V1 is where atrial
activity shows best), and the remaining chest leads after them. Compared like
:data:`PREFERRED_LEADS`. A 12-lead recording thus pairs II with V1, not with lead I."""

MIN_FS = 50.0
"""Lowest sampling rate accepted, in Hz. Below it the Nyquist frequency falls into the
5-20 Hz band where the QRS detector works and a QRS complex (about 100 ms) is a handful
of samples; a header claiming less (1 Hz, 0) is wrong, and reading it would resample a
record up to the model's 360 Hz by an absurd factor (gigabytes from a small file).
Holter recorders (125-128 Hz) and 100 Hz devices are well above it."""
MAX_FS = 10_000.0
"""Highest sampling rate accepted, in Hz. Diagnostic ECGs are recorded at 250-1000 Hz and
high-resolution ECG (late potentials, pacemaker spikes) at up to 10 kHz; a header
claiming more is more likely wrong than a real ECG."""
DEFAULT_FS = 250.0
"""The WFDB format's sampling rate when a header gives none."""
MAX_HEADER_BYTES = 1 << 20
"""A header is a few lines of text; a larger .hea file is not one."""
BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3,
                    "311": 4 / 3}
"""Bytes one sample of one signal takes in each WFDB signal format whose size is fixed;
a signal file is checked against its header's length before it is read (other formats,
e.g. FLAC-compressed ones, are not checked)."""


@dataclass(frozen=True)
class Record:
    """One lead of a record, in mV (or the physical units of a signal that is not in volts:
    :func:`in_millivolts`), at the rate ``fs`` it was recorded at.

    A record is never resampled: sample numbers (its own, its annotations', a user's)
    are always at ``fs``. Only beat cutting (:func:`simsearch.signal.beats.beats_from_record`)
    converts to the model's rate, and converts positions back.
    ``ann_samples``/``ann_symbols`` hold the reference annotations (all of them, beats
    and non-beats) when the record has an annotation file, else ``None``.
    A part of a recording (:func:`load_record`'s ``span_s``) starts at sample ``start`` of
    it: its signal's and annotations' positions count from there, ``start + position`` is
    the sample in the whole recording.
    ``gaps`` (k, 2) holds the [start, stop) samples of each stretch of invalid signal (a WFDB
    record's invalid samples: lead off, not recorded), which ``signal`` bridges with straight
    lines (:func:`bridged`); ``None`` where there is none.
    """

    name: str
    path: str
    signal: np.ndarray
    fs: float
    lead: str
    ann_samples: np.ndarray | None = None
    ann_symbols: np.ndarray | None = None
    start: int = 0
    gaps: np.ndarray | None = None

    @property
    def span_s(self) -> tuple[float, float]:
        """The seconds of the recording this record holds, from its beginning."""
        return self.start / self.fs, (self.start + self.n_samples) / self.fs

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def has_annotations(self) -> bool:
        return self.ann_samples is not None


def data_dir_from(data_dir: str | os.PathLike | None) -> Path | None:
    """The explicit data directory, else ``$SIMSEARCH_DATA``, else None."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if chosen is None or str(chosen) == "":
        return None
    path = _user_path(chosen)
    if path is None or not exists_as(path, "dir"):
        raise RecordNotFoundError(f"data directory not found: {chosen}")
    return path


def record_name(record: str | os.PathLike) -> str:
    """The name a record is known by (``data/100.hea`` -> ``100``, ``holter/rec1.edf`` ->
    ``rec1``): records are compared by name."""
    text = str(record).strip()
    name = Path(text[: -len(".hea")] if text.endswith(".hea") else edf.strip_suffix(text)).name
    if not name or name in (".", "..") or "\x00" in text:
        raise RecordNotFoundError(f"not a record name: {str(record)!r}")
    return name


def resolve_record_path(record: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Find ``<record>.hea`` (the record's path without extension is returned) or an EDF
    file (its path, ``.edf`` included): as a path first, then inside the data directory."""
    name = record_name(record)  # refuses '', '.', '..', '/', NUL bytes
    text = str(record)
    if edf.is_edf(text):  # an EDF file named as such: that file, nothing else
        candidate = _user_path(text)
        if candidate is not None and exists_as(candidate, "file"):
            return candidate.resolve()
        base = data_dir_from(data_dir)
        if base is not None and Path(text).parent == Path(".") and exists_as(base / Path(text).name, "file"):
            return (base / Path(text).name).resolve()
        where = f" in {base}" if base is not None else f" (no data directory: pass --data-dir or set {DATA_ENV})"
        raise RecordNotFoundError(f"record not found: {record}{where}")
    if text.endswith(".hea"):
        text = text[: -len(".hea")]
    candidate = _user_path(text)
    if candidate is not None and candidate.name == name:
        if exists_as(candidate.with_name(name + ".hea"), "file"):
            return candidate.resolve()  # absolute: indexes and annotations outlive the working directory
        if not str(record).endswith(".hea") and exists_as(candidate.with_name(name + ".edf"), "file"):
            return candidate.with_name(name + ".edf").resolve()
    base = data_dir_from(data_dir)
    if base is not None and Path(text).parent == Path("."):
        if exists_as(base / (name + ".hea"), "file"):
            return (base / name).resolve()
        if not str(record).endswith(".hea") and exists_as(base / (name + ".edf"), "file"):
            return (base / (name + ".edf")).resolve()
    where = f" in {base}" if base is not None else f" (no data directory: pass --data-dir or set {DATA_ENV})"
    raise RecordNotFoundError(f"record not found: {record}{where}")


def _user_path(text: str | os.PathLike) -> Path | None:
    """``text`` as a path, ``~`` expanded; None when it cannot name a file (NUL byte, unknown user)."""
    try:
        return Path(text).expanduser()
    except (RuntimeError, ValueError):  # '~nobody/x': no such home directory
        return None


def exists_as(path: Path, kind: str) -> bool:
    """``path.is_file()`` / ``is_dir()``, False for names the system refuses (too long, NUL byte)."""
    try:
        return path.is_file() if kind == "file" else path.is_dir()
    except (OSError, ValueError):
        return False


def load_record(
    record: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    lead: str | None = None,
    annotations: str | None = "atr",
    span_s: tuple[float, float] | None = None,
) -> Record:
    """Read one lead of a WFDB record or an EDF/EDF+ file at its own sampling rate.

    Parameters
    ----------
    record : str or path
        A path (``data/100``, ``data/100.hea``, ``holter/rec1.edf``) or a bare name
        inside ``data_dir`` (``100``: ``100.hea``, else ``100.edf``; ``rec1.edf``).
    data_dir : str or path, optional
        Where bare names are looked up (default: ``$SIMSEARCH_DATA``).
    lead : str, optional
        Lead name (an EDF signal label); by default MLII, else lead II, where present
        (:data:`PREFERRED_LEADS`), else the first lead (in an EDF file, the first
        recorded at an ECG's rate).
    annotations : str or None
        Extension of the annotation file to read when it exists (``None``: ignore
        annotations). An EDF+ file's own annotations are read unless ``None``: those whose
        text starts with an MIT-BIH symbol (see :mod:`simsearch.signal.edf`).
    span_s : (float, float), optional
        Read only these seconds of the recording (from its beginning; cut to its length):
        the returned record starts at its sample ``start``. A beat of a 24-hour recording
        is then read without the rest of the day.

    Returns
    -------
    Record

    Raises
    ------
    RecordNotFoundError, RecordFormatError, LeadNotFoundError, SignalQualityError, AnnotationError
    SampleOutOfRangeError
        ``span_s`` holds no sample of the recording.
    """
    import wfdb  # lazy: wfdb (and pandas under it) takes ~0.4 s to import; stored-beat queries never read a record

    path = resolve_record_path(record, data_dir)
    if edf.is_edf(path):
        return _load_edf(path, lead, annotations is not None, span_s)
    name = path.name
    header, fs, sig_len = _checked_header(path)
    leads = [str(lead) for lead in header.sig_name]
    chosen = _choose_lead(leads, lead, name)
    channel = leads.index(chosen)
    start, stop = (0, sig_len or None) if span_s is None or not sig_len else samples_in(span_s, fs, sig_len, name)
    try:
        raw = wfdb.rdrecord(str(path), channels=[channel], physical=True, sampfrom=start, sampto=stop)
    except FileNotFoundError as exc:
        raise RecordNotFoundError(f"{name}: signal file missing ({reason(exc)})") from None
    except Exception as exc:
        raise RecordFormatError(f"{name}: signal file cannot be read ({reason(exc)})") from None
    if raw.p_signal is None or raw.p_signal.ndim != 2 or raw.p_signal.shape[1] != 1:
        raise RecordFormatError(f"{name}: signal file cannot be read (no samples of lead {chosen})")
    signal = in_millivolts(np.asarray(raw.p_signal[:, 0], dtype=np.float64), (raw.units or [None])[0])
    if sig_len and signal.shape[0] < stop - start:
        raise RecordFormatError(f"{name}: signal file is truncated ({start + signal.shape[0]} of {sig_len} samples)")
    if span_s is not None and not sig_len:  # a header without a length: the span is cut from the whole signal
        start, stop = samples_in(span_s, fs, signal.shape[0], name)
        signal = signal[start:stop]
    ann_samples = ann_symbols = None
    if annotations and exists_as(path.with_name(f"{name}.{annotations}"), "file"):
        ann_samples, ann_symbols = read_annotations(path, annotations)
    return _checked_part(Record(name, str(path), signal, fs, chosen, ann_samples, ann_symbols),
                         None if span_s is None else start)


def samples_in(span_s: tuple[float, float], fs: float, n_samples: int, name: str) -> tuple[int, int]:
    """(start, stop) samples of the seconds ``span_s`` in a recording of ``n_samples`` at ``fs``.

    Raises
    ------
    SampleOutOfRangeError
        The span is not two numbers, the first below the second, overlapping the recording.
    """
    try:
        first, last = (float(t) for t in span_s)
    except (TypeError, ValueError):
        raise SampleOutOfRangeError(f"{name}: a span is two numbers of seconds, not {span_s!r}") from None
    finite = math.isfinite(first) and math.isfinite(last)
    # rounded first: a span made of a record's own samples (Record.span_s) gives them back exactly
    start, stop = (max(0, math.floor(round(first * fs, 6))), min(n_samples, math.ceil(round(last * fs, 6)))) \
        if finite else (0, 0)
    if start >= stop:
        raise SampleOutOfRangeError(f"{name}: seconds {first:g} to {last:g} hold no sample of the recording "
                                    f"(0 to {n_samples / fs:g} s)")
    return start, stop


def _checked_part(record: Record, start: int | None) -> Record:
    """``record`` once its gaps are bridged (:func:`bridged`) and its signal passes :func:`check_signal` and is
    long enough; read from sample ``start`` of its recording (None: read whole), its annotations in that part only,
    counted from ``start`` (a whole record keeps all of its own, whose positions are checked
    where beats are cut)."""
    what = f"{record.name} lead {record.lead}"
    signal, gaps = bridged(record.signal, what)
    record = replace(record, signal=signal, gaps=gaps)
    check_signal(record.signal, what)
    valid = record.n_samples - (0 if gaps is None else int((gaps[:, 1] - gaps[:, 0]).sum()))
    if valid < MIN_DURATION_S * record.fs:
        raise SignalQualityError(f"{what}: signal too short ({valid} valid samples at {record.fs:g} Hz, "
                                 f"at least {MIN_DURATION_S:g} s)")
    if start is None:
        return record
    if not record.has_annotations:
        return replace(record, start=start)
    inside = (record.ann_samples >= start) & (record.ann_samples < start + record.n_samples)
    return replace(record, start=start, ann_samples=record.ann_samples[inside] - start,
                   ann_symbols=record.ann_symbols[inside])


MILLIVOLTS_PER_UNIT = {"v": 1e3, "volt": 1e3, "mv": 1.0, "millivolt": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3,
                       "microvolt": 1e-3, "nv": 1e-6}
"""Voltage units a header may name (compared in lower case, so ``MV`` is read as mV: no ECG is in
megavolts), in mV. A signal in one of them is read in mV, as MIT-BIH's are: the pictures draw mV
on the ECG grid, and nothing downstream depends on a signal's scale (windows and context are
scale-free). Other units (none, ``NU``, ADC counts) are kept as they are."""


def in_millivolts(signal: np.ndarray, unit: str | None) -> np.ndarray:
    """``signal`` in mV when ``unit`` is a voltage unit (:data:`MILLIVOLTS_PER_UNIT`), else unchanged."""
    scale = MILLIVOLTS_PER_UNIT.get(str(unit or "").strip().lower().rstrip("s"), 1.0)
    return signal * scale if scale != 1.0 else signal


def write_record(path: str | os.PathLike, signal: np.ndarray, fs: float, leads: list[str]) -> Path:
    """Write ``signal`` (n,) or (n, leads) in mV as a WFDB record at ``path`` (no extension;
    16-bit samples, the gain fitted to the signal's range) and return ``path``."""
    import wfdb  # lazy, as in load_record

    path = Path(path)
    signal = np.asarray(signal, dtype=np.float64).reshape(len(signal), -1)
    wfdb.wrsamp(path.name, fs=fs, units=["mV"] * signal.shape[1], sig_name=list(leads), p_signal=signal,
                fmt=["16"] * signal.shape[1], write_dir=str(path.parent))
    return path


def _load_edf(path: Path, lead: str | None, annotations: bool, span_s: tuple[float, float] | None) -> Record:
    name = record_name(path)
    header = _checked_edf_header(path)
    chosen = _choose_lead(header.leads, lead, name, header.rates)
    channel = header.leads.index(chosen)
    fs = check_sampling_rate(header.rates[channel], f"{path.name} lead {chosen}")
    length = header.lengths[channel]
    start, stop = (0, length) if span_s is None else samples_in(span_s, fs, length, name)
    signal, ann_samples, ann_symbols = edf.read_lead(path, channel, annotations, start, stop - start)
    signal = in_millivolts(signal, header.units[channel])
    return _checked_part(Record(name, str(path), signal, fs, chosen, ann_samples, ann_symbols),
                         None if span_s is None else start)


def resampled(record: Record, fs: float) -> Record:
    """``record`` as if it had been recorded at ``fs``: its signal resampled
    (:func:`simsearch.signal.filtering.resample`) and its annotations moved to the nearest
    sample at the new rate (those falling past the end dropped). For tests and model
    selection at other sampling rates; simsearch itself never resamples a record."""
    fs = check_sampling_rate(fs, f"{record.name}: target rate")
    signal = resample(record.signal, record.fs, fs)
    start = round(record.start * fs / record.fs)
    gaps = None if record.gaps is None else np.minimum(gaps_at(record.gaps, record.fs, fs), signal.shape[0])
    if not record.has_annotations:
        return replace(record, signal=signal, fs=fs, start=start, gaps=gaps)
    samples = np.round(record.ann_samples * (fs / record.fs)).astype(np.int64)
    inside = samples < signal.shape[0]
    return replace(record, signal=signal, fs=fs, start=start, ann_samples=samples[inside],
                   ann_symbols=record.ann_symbols[inside], gaps=gaps)


def _checked_edf_header(path: Path) -> edf.EdfHeader:
    try:
        return edf.read_header(path)
    except FileNotFoundError:
        raise RecordNotFoundError(f"record not found: {path}") from None


_FS_FIELD = re.compile(r"(?P<fs>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)(?:/[^\s(]+(?:\([^\s)]*\))?)?")
_GAIN_FIELD = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?(?:\(-?[0-9]+\))?(?:/\S+)?")
"""A signal line's gain field: a number, then optionally ``(baseline)`` and ``/units``. wfdb's parser reads
``abc`` as units "abc" at the default gain, and ``200(x)`` as gain 200 at baseline 0, without a word."""


def read_record_line(path: Path) -> tuple[float, int, int | None]:
    """(sampling rate, number of signals, signal length or None) from the record line of
    ``<path>.hea``, read strictly: wfdb's own parser reads ``1e9`` Hz as 1 Hz and a
    negative rate as the default 250 Hz without a word.

    Raises :class:`RecordFormatError` for anything but a single-segment record line
    with a whole number of signals (at least one), a rate from :data:`MIN_FS` to
    :data:`MAX_FS` and a whole, non-negative length, or a signal line whose gain field
    is not a number (:data:`_GAIN_FIELD`).
    """
    where = f"{path}.hea"
    try:
        with open(f"{path}.hea", "rb") as file:
            data = file.read(MAX_HEADER_BYTES + 1)
    except OSError as exc:
        raise RecordNotFoundError(f"{where}: cannot be read ({exc.strerror or reason(exc)})") from None
    if len(data) > MAX_HEADER_BYTES:
        raise RecordFormatError(f"{where}: malformed header (over {MAX_HEADER_BYTES} bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordFormatError(f"{where}: malformed header (not text)") from None
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise RecordFormatError(f"{where}: malformed header (empty)")
    fields = lines[0].split()
    if "/" in fields[0]:
        raise RecordFormatError(f"{where}: multi-segment records are not supported")
    if len(fields) < 2 or not fields[1].isascii() or not fields[1].isdigit():
        raise RecordFormatError(f"{where}: malformed header (record line {lines[0]!r})")
    n_signals = int(fields[1])
    if n_signals == 0:
        raise RecordFormatError(f"{where}: the header names no signal")
    for number, line in enumerate(lines[1:1 + n_signals], start=1):
        gain = line.split()[2:3]
        if gain and _GAIN_FIELD.fullmatch(gain[0]) is None:
            raise RecordFormatError(f"{where}: malformed header (gain {gain[0]!r} of signal {number})")
    fs = DEFAULT_FS
    if len(fields) > 2:
        match = _FS_FIELD.fullmatch(fields[2])
        if match is None:
            raise RecordFormatError(f"{where}: malformed header (sampling rate {fields[2]!r})")
        fs = float(match["fs"])
    check_sampling_rate(fs, where)
    sig_len = None
    if len(fields) > 3:
        if not fields[3].isascii() or not fields[3].isdigit():
            raise RecordFormatError(f"{where}: malformed header (signal length {fields[3]!r})")
        sig_len = int(fields[3])
        if sig_len == 0:
            raise RecordFormatError(f"{where}: the header announces no samples (signal length 0)")
    return fs, n_signals, sig_len


def check_sampling_rate(fs: float, what: str) -> float:
    """``fs`` if it is a sampling rate an ECG is recorded at (:data:`MIN_FS` to :data:`MAX_FS` Hz)."""
    if not isinstance(fs, (int, float, np.integer, np.floating)) or not math.isfinite(fs) \
            or not MIN_FS <= fs <= MAX_FS:
        raise RecordFormatError(f"{what}: sampling rate {fs!r} Hz is not that of an ECG "
                                f"(accepted: {MIN_FS:g} to {MAX_FS:g} Hz)")
    return float(fs)


def check_signal_files(path: Path, header) -> None:
    """Refuse a missing signal file, or one shorter than its header says, before reading it
    (a header's length is believed otherwise, and reading allocates what it announces)."""
    files: dict[str, list[int]] = {}
    for i, file_name in enumerate(header.file_name or []):
        files.setdefault(str(file_name), []).append(i)
    for file_name, signals in files.items():
        data = path.parent / file_name
        if not exists_as(data, "file"):
            if data.exists():
                raise RecordFormatError(f"{path.name}: signal file {file_name} is not a file")
            raise RecordNotFoundError(f"{path.name}: signal file missing ({file_name})")
        formats = [str(header.fmt[i]) for i in signals]
        if header.sig_len is None or not all(f in BYTES_PER_SAMPLE for f in formats):
            continue
        frames = header.samps_per_frame or [1] * len(header.file_name)
        offsets = header.byte_offset or [0] * len(header.file_name)
        per_frame = sum(BYTES_PER_SAMPLE[str(header.fmt[i])] * int(frames[i] or 1) for i in signals)
        expected = max(int(offsets[i] or 0) for i in signals) + math.ceil(header.sig_len * per_frame - 1e-9)
        size = data.stat().st_size
        if size < expected:
            raise RecordFormatError(f"{path.name}: signal file is truncated ({file_name} holds {size} bytes, "
                                    f"its header announces {header.sig_len} samples: {expected} bytes)")


def read_annotations(path: Path, extension: str) -> tuple[np.ndarray, np.ndarray]:
    """(samples, symbols) of every annotation in ``<path>.<extension>``; empty arrays for an
    empty file (a record without annotations of that kind).

    Raises :class:`RecordFormatError` for a truncated or corrupt file, and
    :class:`~simsearch.errors.AnnotationError` for symbols no MIT-BIH table defines.
    """
    samples, symbols, _ = _annotation_file(path, extension)
    check_symbols(symbols, path.with_name(f"{path.name}.{extension}").name)
    return samples, symbols


def _annotation_file(path: Path, extension: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(samples, symbols, notes) of ``<path>.<extension>``, its symbols unchecked; ``notes`` holds each
    annotation's text (``aux_note``, ``""`` where none). :func:`read_annotations`' errors but the symbols'."""
    import wfdb  # lazy, as in load_record

    file = path.with_name(f"{path.name}.{extension}")
    try:
        data = file.read_bytes()
    except OSError as exc:
        why = exc.strerror or reason(exc)
        raise RecordFormatError(f"{file.name}: annotation file cannot be read ({why})") from None
    if len(data) % 2 or (data and not data.endswith(b"\0\0")):  # MIT format: 16-bit words, ending in a zero word
        raise RecordFormatError(f"{file.name}: annotation file is truncated (no end-of-file mark)")
    if len(data) <= 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object)
    try:
        ann = wfdb.rdann(str(path), extension)
    except Exception as exc:  # wfdb fails with IndexError, ValueError... on corrupt files
        raise RecordFormatError(f"{file.name}: annotation file cannot be read ({reason(exc)})") from None
    symbols = np.asarray(ann.symbol, dtype=object)
    samples = np.asarray(ann.sample, dtype=np.int64)
    if samples.shape != symbols.shape or (samples.size and samples.min() < 0):
        raise RecordFormatError(f"{file.name}: annotation file cannot be read (corrupt sample numbers)")
    notes = ann.aux_note if ann.aux_note is not None and len(ann.aux_note) == samples.size else [""] * samples.size
    return samples, symbols, np.asarray([str(note or "") for note in notes], dtype=object)


RHYTHM_MARK = "("
"""What opens a rhythm annotation's text: MIT-BIH marks each change of rhythm with a ``+`` annotation whose text
names the rhythm that begins, ``(N`` (sinus), ``(AFIB``, ``(AFL``, ``(SVTA``, ``(B`` (ventricular bigeminy)...,
as the PhysioNet databases annotated like it do (the Supraventricular Arrhythmia, INCART, Long-Term AF ones)."""


def read_rhythms(record: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 annotations: str = "atr") -> tuple[np.ndarray, np.ndarray]:
    """(samples, names) of the reference's changes of rhythm (:data:`RHYTHM_MARK`), sorted: from each
    sample on, the rhythm so named (``AFIB``, the mark left off) holds until the next. Empty where the
    record has no such annotation file (an EDF file's annotations hold beats only) or no rhythm in it.

    Raises
    ------
    RecordNotFoundError
        No such record.
    RecordFormatError
        A truncated or corrupt annotation file.
    """
    path = resolve_record_path(record, data_dir)
    if edf.is_edf(path) or not exists_as(path.with_name(f"{path.name}.{annotations}"), "file"):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype="<U1")
    samples, _, notes = _annotation_file(path, annotations)
    names = np.char.strip(np.asarray([note.replace("\0", "") for note in notes], dtype=str))
    marked = np.char.startswith(names, RHYTHM_MARK) & (np.char.str_len(names) > len(RHYTHM_MARK))
    order = np.argsort(samples[marked], kind="stable")
    return samples[marked][order], np.char.lstrip(names[marked][order], RHYTHM_MARK)


def rhythm_at(changes: np.ndarray, names: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """The rhythm in force at each of ``samples`` (:func:`read_rhythms`' ``changes`` and ``names``): the
    name of the last change at or before it, ``""`` before the first."""
    samples = np.asarray(samples, dtype=np.int64)
    names = np.asarray(names, dtype=str)
    at = np.searchsorted(np.asarray(changes, dtype=np.int64), samples, side="right") - 1
    if names.size == 0:
        return np.full(samples.shape, "", dtype="<U1")
    return np.where(at >= 0, names[np.clip(at, 0, None)], "")


MIN_SAMPLES = 64
"""Shorter signals hold no beat and are too short for the zero-phase filters."""
MIN_DURATION_S = 0.5
"""Shorter records (less than one RR interval at 120 bpm) hold no beat, whatever their
rate; at 10 kHz, MIN_SAMPLES would be a few samples once resampled to the model's rate."""


def record_list(spec: str) -> list[str]:
    """The records ``spec`` names (:func:`~simsearch.aami.parse_record_list`), or those of a directory (its WFDB
    records and EDF files, as paths) or of a PhysioNet ``RECORDS`` file (the records it lists, as paths beside
    it): another database named as it is distributed. A record named twice (records are compared by name:
    ``100`` and ``data/100``, or ``rec.hea`` and ``rec.edf`` in one directory) is refused, not counted twice."""
    names = _named_records(spec)
    first: dict[str, str] = {}
    for name in names:
        key = record_name(name)
        if key in first:
            twice = repr(name) if first[key] == name else f"as {first[key]!r} and {name!r}"
            raise ParameterError(f"record {key} is named twice in {spec!r} ({twice})")
        first[key] = name
    return names


def _named_records(spec: str) -> list[str]:
    key = spec.strip()
    path = _user_path(key) if key else None
    if path is not None and exists_as(path, "dir"):
        names = sorted({str(p.with_suffix("")) for p in path.glob("*.hea")} |
                       {str(p) for p in path.iterdir() if edf.is_edf(p)})
        if not names:
            raise ParameterError(f"{spec}: a directory with no record (no .hea, .edf or .bdf file)")
        return names
    if path is not None and path.name == "RECORDS" and exists_as(path, "file"):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ParameterError(f"{spec}: cannot be read ({exc.__class__.__name__})") from None
        names = [str(path.parent / line.strip()) for line in lines if line.strip() and not line.startswith("#")]
        if not names:
            raise ParameterError(f"{spec}: lists no record")
        return names
    return parse_record_list(spec)


def bridged(signal: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(``signal`` with each stretch of NaN or infinite samples replaced by the straight line between the valid
    samples around it, the (k, 2) [start, stop) samples of those gaps or ``None``).

    A recording with a few seconds of lead-off or unrecorded signal (what a WFDB record marks as invalid samples,
    which wfdb reads as NaN) is still a recording: its beats elsewhere are labeled, and a line carries no QRS, so
    the detector finds none in a gap. Beats whose windows reach into one are doubted
    (:func:`simsearch.signal.beats.beats_from_record`). A gap at an end repeats the nearest valid sample.

    Raises
    ------
    SignalQualityError
        No sample is valid (one that is 1-D; other shapes are :func:`check_signal`'s to refuse).
    """
    signal = np.asarray(signal)
    if signal.ndim != 1 or signal.size == 0:
        return signal, None
    invalid = ~np.isfinite(signal)
    if not invalid.any():
        return signal, None
    if invalid.all():
        raise SignalQualityError(f"{what}: no valid sample ({signal.size} NaN or infinite samples)")
    edges = np.flatnonzero(np.diff(np.concatenate([[0], invalid.view(np.int8), [0]])))
    gaps = edges.reshape(-1, 2).astype(np.int64)
    at = np.arange(signal.size)
    out = signal.copy()
    out[invalid] = np.interp(at[invalid], at[~invalid], signal[~invalid])
    return out, gaps


def gaps_at(gaps: np.ndarray, fs: float, to_fs: float) -> np.ndarray:
    """``gaps`` ([start, stop) samples at ``fs``) at the rate ``to_fs``, widened to whole samples there."""
    scale = to_fs / fs
    return np.column_stack([np.floor(gaps[:, 0] * scale), np.ceil(gaps[:, 1] * scale)]).astype(np.int64)


def check_signal(signal: np.ndarray, what: str) -> None:
    """Refuse signals no beat can come from: too short, NaN/inf samples, or a flat line."""
    if signal.ndim != 1 or signal.shape[0] < MIN_SAMPLES:
        raise SignalQualityError(f"{what}: signal too short ({signal.size} samples, at least {MIN_SAMPLES})")
    bad = ~np.isfinite(signal)
    if bad.any():
        raise SignalQualityError(f"{what}: {int(bad.sum())} NaN or infinite samples")
    if float(np.ptp(signal)) < 1e-6:
        raise SignalQualityError(f"{what}: flat signal (no variation)")


def check_record(record: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 lead: str | None = None, annotations: str | None = "atr") -> Path:
    """The path of ``record`` (see :func:`resolve_record_path`) once its header is read and
    checked, its signal files found and long enough, ``lead`` found in it and its
    annotation file (if any) read: what can be known of a record without reading its
    signal, so a command can refuse a bad record before anything heavy (the encoder, the
    other records) loads.

    Raises
    ------
    RecordNotFoundError, RecordFormatError, LeadNotFoundError, AnnotationError
    """
    path = resolve_record_path(record, data_dir)
    if edf.is_edf(path):  # its annotations are inside, and never refused (unknown texts are skipped)
        header = _checked_edf_header(path)
        chosen = _choose_lead(header.leads, lead, record_name(path), header.rates)
        check_sampling_rate(header.rates[header.leads.index(chosen)], f"{path.name} lead {chosen}")
        return path
    header, _, _ = _checked_header(path)
    _choose_lead([str(name) for name in header.sig_name], lead, path.name)
    if annotations and exists_as(path.with_name(f"{path.name}.{annotations}"), "file"):
        read_annotations(path, annotations)
    return path


def lead_extent(record: str | os.PathLike, data_dir: str | os.PathLike | None = None, *,
                lead: str | None = None) -> tuple[float, int | None]:
    """(sampling rate, number of samples) of the lead :func:`load_record` reads (``lead``, or its
    default), from the header alone; the number is None where a WFDB header does not give it.

    Raises
    ------
    RecordNotFoundError, RecordFormatError, LeadNotFoundError
    """
    path = resolve_record_path(record, data_dir)
    if edf.is_edf(path):
        header = _checked_edf_header(path)
        chosen = _choose_lead(header.leads, lead, record_name(path), header.rates)
        channel = header.leads.index(chosen)
        return check_sampling_rate(header.rates[channel], f"{path.name} lead {chosen}"), header.lengths[channel]
    header, fs, sig_len = _checked_header(path)
    _choose_lead([str(name) for name in header.sig_name], lead, path.name)
    return fs, sig_len or None


def record_leads(record: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the leads of ``record`` (WFDB signal names, EDF labels), from its header."""
    path = resolve_record_path(record, data_dir)
    if edf.is_edf(path):
        return list(_checked_edf_header(path).leads)
    return [str(name) for name in _checked_header(path)[0].sig_name]


def other_lead(record: str | os.PathLike, data_dir: str | os.PathLike | None = None, *,
               first: str | None = None) -> str | None:
    """The lead to pair with ``first`` (default: the lead :func:`load_record` reads by
    default): the first of :data:`SECOND_LEAD_ORDER` the record has, else its first other
    lead; ``None`` when it has no other. In an EDF file only signals at an ECG rate count.
    In MIT-BIH it is the record's other lead (V1 in most records; V2, V4 or V5 in a few)."""
    path = resolve_record_path(record, data_dir)
    rates = _checked_edf_header(path).rates if edf.is_edf(path) else None
    leads = record_leads(path)
    first = _choose_lead(leads, first, record_name(path), rates)
    others = [lead for lead in _ecg_leads(leads, rates) if lead != first]
    for preferred in SECOND_LEAD_ORDER:
        found = next((lead for lead in others if _lead_key(lead) == preferred), None)
        if found is not None:
            return found
    return others[0] if others else None


def read_other_lead(record: Record) -> Record | None:
    """The same seconds of ``record``'s other lead (:func:`other_lead`), without annotations; ``None``
    when it has none or ``record`` is no file (a raw signal). The one reader of a second lead: the
    detector checks its beats in it, an index of both leads embeds it."""
    if not record.path:
        return None
    lead = other_lead(record.path, first=record.lead)
    if lead is None:
        return None
    # a part of a recording (a query beat of a long one) reads the same seconds; an EDF file may sample its
    # leads at different rates: callers take the same instants
    return load_record(record.path, lead=lead, annotations=None, span_s=record.span_s)


_WFDB_NAME = re.compile(r"[-\w]+", re.ASCII)
"""The names wfdb reads a record by (its own pattern, in ASCII: other letters are dropped from the signal file's
name, and the record is refused as "signal file missing")."""


def _checked_header(path: Path):
    """(wfdb header, sampling rate, signal length or None) of a record whose header and
    signal files pass :func:`read_record_line` and :func:`check_signal_files`."""
    import wfdb  # lazy, as in load_record

    if _WFDB_NAME.fullmatch(path.name) is None:
        raise RecordFormatError(f"{path.name}: a WFDB record's name is ASCII letters, digits, '_' and '-' "
                                "(wfdb reads no other: rename the record's files)")
    fs, n_signals, sig_len = read_record_line(path)
    try:
        header = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises many types for one cause: a bad header
        raise RecordFormatError(f"{path}.hea: malformed header ({reason(exc)})") from None
    n_leads = len(header.sig_name or [])
    if n_leads != n_signals:
        raise RecordFormatError(f"{path}.hea: malformed header (the record line announces {n_signals} signal(s), "
                                f"{n_leads} signal line(s) follow)")
    if header.sig_len != sig_len or not math.isclose(float(header.fs), fs):
        raise RecordFormatError(f"{path}.hea: malformed header (unreadable record line)")
    check_signal_files(path, header)
    return header, fs, sig_len


def _lead_key(lead: str) -> str:
    """A lead name compared with :data:`PREFERRED_LEADS`: ``ECG II``, ``ekg-ii`` and ``II`` are all ``II``."""
    key = "".join(ch for ch in lead.upper() if ch not in " -_")
    for prefix in ("ECG", "EKG"):
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix):]
    return key


def _ecg_leads(leads: list[str], rates: list[float] | None) -> list[str]:
    """The leads at an ECG rate (an EDF file may hold slow signals too: accelerometer, events)."""
    return [lead for lead, fs in zip(leads, rates) if MIN_FS <= fs <= MAX_FS] if rates is not None else leads


def _choose_lead(leads: list[str], lead: str | None, name: str, rates: list[float] | None = None) -> str:
    if lead is None:
        usable = _ecg_leads(leads, rates)
        for preferred in PREFERRED_LEADS:
            found = next((lead for lead in usable if _lead_key(lead) == preferred), None)
            if found is not None:
                return found
        return usable[0] if usable else leads[0]
    if lead not in leads:
        raise LeadNotFoundError(f"{name}: no lead {lead!r} (leads: {', '.join(leads)})")
    return lead
