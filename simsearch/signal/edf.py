"""Reading EDF and EDF+ recordings (what Holter systems export): one lead, its rate, its annotations.

The reader is pyedflib (the EDFlib C library): measured on a 24-hour two-lead EDF+ file
at 360 Hz (164 MB, 114,674 annotations), reading one lead and every annotation took a
median 1.4 s and 348 MB peak RSS (the lead itself is 249 MB of float64), against 2.9 s
and 700 MB for edfio 0.4.18, 4.9 s and 670 MB for MNE 1.13 (and its 8 dependencies),
and 94 s for wfdb 4.3's own EDF reader, which also read the EDF+ file wrongly (its
annotation signal taken as a 72 Hz lead). pyedflib needs only NumPy.

EDF+ annotations become MIT-BIH annotations where their text starts with an MIT-BIH
symbol (``N``, ``V``, ``+ (AFIB``...: what ``scripts/make_holter.py`` writes and what
WFDB-minded exports hold); other texts (``Recording starts``, events, comments) are
not beat annotations and are skipped. A discontinuous recording (EDF+D) is refused: its
samples are not evenly spaced in time, which every sample number here assumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..aami import NON_BEAT_SYMBOLS, SYMBOL_TO_AAMI
from ..errors import RecordFormatError, reason

SUFFIXES = (".edf", ".bdf")
"""File name endings read as EDF(+) (16-bit) or BDF(+) (24-bit)."""


def is_edf(path: str | Path) -> bool:
    """Whether ``path`` names an EDF/BDF file (by its ending, in any case)."""
    return str(path).lower().endswith(SUFFIXES)


def strip_suffix(text: str) -> str:
    """``text`` without its EDF/BDF ending."""
    return text[: -len(".edf")] if is_edf(text) else text


@dataclass(frozen=True)
class EdfHeader:
    """What an EDF file says about itself before its samples are read."""

    leads: list[str]
    rates: list[float]
    lengths: list[int]
    discontinuous: bool
    units: list[str]
    """Each signal's physical dimension as written (``uV``, ``mV``...)."""


HEADER_BYTES = 256
SIGNAL_HEADER_BYTES = 256
"""An EDF header is 256 bytes, then 256 bytes per signal (annotation signals included)."""


def check_layout(path: Path) -> None:
    """Refuse what is not an EDF/BDF file, or one whose size its header does not add up to,
    from the header's fixed fields (EDFlib would refuse it too, but prints the sizes on
    stdout, where they would garble a ``--json`` answer)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(HEADER_BYTES)
            version = head[:8]
            if version not in (b"0       ", b"\xffBIOSEMI"):
                raise RecordFormatError(f"{path.name}: not an EDF file (no EDF or BDF version field)")
            fields = _fields(head)
            n_signals = fields["signals"]
            file.seek(HEADER_BYTES + n_signals * 216)
            per_record = file.read(8 * n_signals)
    except OSError as exc:
        raise RecordFormatError(f"{path.name}: cannot be read ({exc.strerror or reason(exc)})") from None
    except ValueError as exc:
        if size < HEADER_BYTES:
            raise RecordFormatError(f"{path.name}: not an EDF file ({size} bytes, "
                                    "shorter than an EDF header)") from None
        raise RecordFormatError(f"{path.name}: not an EDF file (malformed header: {exc})") from None
    try:
        samples = [int(per_record[8 * i: 8 * i + 8].decode("ascii").strip()) for i in range(n_signals)]
    except (ValueError, UnicodeError):
        raise RecordFormatError(f"{path.name}: not an EDF file (malformed header: samples per data record)") from None
    width = 3 if version.startswith(b"\xff") else 2
    expected = fields["header_bytes"] + fields["records"] * sum(samples) * width
    if fields["header_bytes"] != HEADER_BYTES + n_signals * SIGNAL_HEADER_BYTES or min(samples, default=1) < 1:
        raise RecordFormatError(f"{path.name}: not an EDF file (malformed header: its size or signal count)")
    if fields["records"] >= 0 and size < expected:
        raise RecordFormatError(f"{path.name}: EDF file is truncated ({size} bytes, its header announces "
                                f"{fields['records']} data records: {expected} bytes)")


def _fields(head: bytes) -> dict[str, int]:
    """The header's byte count, data record count and signal count (ValueError if not numbers)."""
    if len(head) < HEADER_BYTES:
        raise ValueError("too short")
    text = head.decode("latin-1")
    values = {"header_bytes": text[184:192], "records": text[236:244], "signals": text[252:256]}
    out = {}
    for key, value in values.items():
        try:
            out[key] = int(value.strip())
        except ValueError:
            raise ValueError(f"{key.replace('_', ' ')} {value.strip()!r}") from None
    if not 0 < out["signals"] <= 4096:
        raise ValueError(f"signals {out['signals']}")
    return out


def _open(path: Path, annotations: bool):
    check_layout(path)
    try:
        import pyedflib  # lazy: only EDF input needs it (and it loads a C extension)
    except ImportError:  # pragma: no cover - a dependency; a broken install says so in one line
        raise RecordFormatError(f"{path.name}: reading EDF needs pyedflib (pip install pyedflib)") from None
    mode = pyedflib.READ_ALL_ANNOTATIONS if annotations else pyedflib.DO_NOT_READ_ANNOTATIONS
    try:
        return pyedflib.EdfReader(str(path), annotations_mode=mode, check_file_size=pyedflib.CHECK_FILE_SIZE)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, UnicodeError) as exc:  # EDFlib names the defect: header, size, version...
        raise RecordFormatError(f"{path.name}: not a readable EDF/EDF+ file ({_edflib_reason(exc)})") from None


def _edflib_reason(exc: BaseException) -> str:
    text = reason(exc)
    return text.split(": ", 1)[-1] if text.startswith(("/", str(Path.cwd()))) else text


def read_header(path: Path) -> EdfHeader:
    """The leads, rates and lengths of an EDF file, checked, without reading its samples.

    Raises
    ------
    RecordFormatError
        Not an EDF/EDF+/BDF file, a truncated one, or a discontinuous one (EDF+D).
    """
    reader = _open(path, annotations=False)
    try:
        return _header(reader, path)
    finally:
        reader.close()


def _header(reader, path: Path) -> EdfHeader:
    n = int(reader.signals_in_file)
    leads = [str(reader.getLabel(i)).strip() for i in range(n)]
    try:  # pyedflib divides by the header's data-record duration
        rates = [float(reader.getSampleFrequency(i)) for i in range(n)]
    except ZeroDivisionError:
        raise RecordFormatError(f"{path.name}: the EDF header gives its data records no duration (0 s)") from None
    lengths = [int(v) for v in reader.getNSamples()[:n]]
    units = [str(reader.getPhysicalDimension(i)).strip() for i in range(n)]
    discontinuous = _reserved_field(path).startswith(("EDF+D", "BDF+D"))
    if n == 0:
        raise RecordFormatError(f"{path.name}: the EDF file holds no signal")
    if discontinuous:
        raise RecordFormatError(f"{path.name}: a discontinuous EDF+ recording (EDF+D) is not supported: its samples "
                                "are not evenly spaced in time; export it as continuous EDF+ (EDF+C)")
    return EdfHeader(leads, rates, lengths, discontinuous, units)


def _reserved_field(path: Path) -> str:
    """The 44-character 'reserved' field of the header (EDF+C / EDF+D), '' if unreadable."""
    try:
        with open(path, "rb") as file:
            file.seek(192)
            return file.read(44).decode("ascii", "replace").strip()
    except OSError:
        return ""


def read_lead(path: Path, channel: int, annotations: bool, start: int = 0, n_samples: int | None = None
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(signal in its physical units, annotation samples, symbols) of lead ``channel``: its
    ``n_samples`` from sample ``start`` (default: all).

    Annotation positions are at the lead's rate, counted from the recording's beginning
    (all of them, whatever part of the signal is read). They are None when ``annotations``
    is false or the file holds no annotation whose text starts with an MIT-BIH symbol.
    """
    reader = _open(path, annotations=annotations)
    try:
        header = _header(reader, path)
        fs = header.rates[channel]
        try:
            signal = np.asarray(reader.readSignal(channel, start, n_samples), dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise RecordFormatError(f"{path.name}: signal {header.leads[channel]!r} cannot be read "
                                    f"({_edflib_reason(exc)})") from None
        ann_samples = ann_symbols = None
        if annotations:
            onsets, _, texts = reader.readAnnotations()
            ann_samples, ann_symbols = _symbol_annotations(np.asarray(onsets, dtype=np.float64), texts, fs,
                                                           header.lengths[channel])
    finally:
        reader.close()
    return signal, ann_samples, ann_symbols


def _symbol_annotations(onsets: np.ndarray, texts, fs: float, n_samples: int
                        ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Samples and MIT-BIH symbols of the annotations whose text starts with one; None if none does."""
    known = set(SYMBOL_TO_AAMI) | set(NON_BEAT_SYMBOLS)
    symbols = np.array([(str(t).split() or [""])[0] for t in texts], dtype=object)
    keep = np.array([s in known for s in symbols], dtype=bool)
    if not keep.any():
        return None, None
    samples = np.round(onsets[keep] * fs).astype(np.int64)
    symbols = symbols[keep]
    inside = (samples >= 0) & (samples < n_samples)
    order = np.argsort(samples[inside], kind="stable")
    return samples[inside][order], symbols[inside][order]
