"""MIT-BIH beat symbols, AAMI EC57 classes and the de Chazal inter-patient record split."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import AnnotationError, ParameterError

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
"""AAMI classes in the order used for every score vector and confusion matrix."""

SYMBOL_TO_AAMI: dict[str, str] = {
    **dict.fromkeys("NLRejBn", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VEr", "V"),
    "F": "F",
    **dict.fromkeys("/fQ?", "Q"),
}
"""Every beat symbol of the WFDB annotation vocabulary, mapped to its AAMI class (EC57).

MIT-BIH's records use the first ones (N L R e j, A a J S, V E, F, / f Q); other databases
also mark ``B`` (bundle branch block, unspecified: N, as left and right are), ``n``
(supraventricular escape: N, as atrial and nodal escapes are: SVEB means premature),
``r`` (R-on-T ventricular premature beat: V) and ``?`` (not classified: Q)."""

NON_BEAT_SYMBOLS: frozenset[str] = frozenset('[!]x()p t u`\'^|~+sT*D="@')
"""Annotation symbols that mark something other than a beat (rhythm, noise, waves...)."""

DS1: tuple[str, ...] = tuple(
    ["101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
     "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230"]
)
DS2: tuple[str, ...] = tuple(
    ["100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
     "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234"]
)
PACED: tuple[str, ...] = ("102", "104", "107", "217")
ALL_RECORDS: tuple[str, ...] = tuple(sorted(DS1 + DS2 + PACED))

RECORD_SETS: dict[str, tuple[str, ...]] = {"all": ALL_RECORDS, "DS1": DS1, "DS2": DS2}


def parse_record_list(spec: str) -> list[str]:
    """Expand ``all``, ``DS1``, ``DS2`` or a comma-separated list of names/paths (a directory or a
    ``RECORDS`` file too: :func:`simsearch.signal.records.record_list`)."""
    key = spec.strip()
    for name, records in RECORD_SETS.items():
        if key.lower() == name.lower():
            return list(records)
    names = [part.strip() for part in key.split(",") if part.strip()]
    if not names:
        raise ParameterError(f"no record named in {spec!r}")
    return names


def check_symbols(symbols: Iterable[str], source: str) -> None:
    """Refuse symbols that are neither beats nor known non-beat annotations."""
    unknown = sorted({repr(s) if isinstance(s, str) else "an undefined code" for s in symbols
                      if s not in SYMBOL_TO_AAMI and s not in NON_BEAT_SYMBOLS})
    if unknown:
        raise AnnotationError(f"{source}: unknown annotation symbol(s) {', '.join(unknown)}")


def to_aami(symbols: Iterable[str]) -> np.ndarray:
    """Map beat symbols to AAMI class letters (an array of str)."""
    try:
        return np.array([SYMBOL_TO_AAMI[s] for s in symbols], dtype="<U1")
    except KeyError as exc:
        raise AnnotationError(f"not a beat symbol: {exc.args[0]!r}") from None


def class_index(labels: Iterable[str]) -> np.ndarray:
    """AAMI letters -> integer positions in :data:`AAMI_CLASSES`."""
    lookup = {c: i for i, c in enumerate(AAMI_CLASSES)}
    try:
        return np.array([lookup[c] for c in labels], dtype=np.int64)
    except KeyError as exc:
        raise AnnotationError(f"not an AAMI class: {exc.args[0]!r} "
                              f"(expected one of {', '.join(AAMI_CLASSES)})") from None


AAMI_TO_SYMBOL: dict[str, str] = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}
"""The MIT-BIH symbol written for a beat labeled only with its AAMI class."""
