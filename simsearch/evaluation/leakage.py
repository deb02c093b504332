"""Leak guards: no test record may also train, index or answer for itself.

Records are compared by name (:func:`simsearch.signal.records.record_name`), never by
the string a user typed: ``101``, ``data/101`` and ``/abs/data/101.hea`` are one record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import ParameterError
from ..signal.records import record_name


def shared_records(first: Iterable[str | os.PathLike], second: Iterable[str | os.PathLike]) -> list[str]:
    """Names of the records in both lists, sorted (names or paths, compared by name)."""
    return sorted({record_name(r) for r in first} & {record_name(r) for r in second})


def check_disjoint(train: Iterable[str | os.PathLike], test: Iterable[str | os.PathLike],
                   train_what: str = "the training records") -> None:
    """Refuse test records that are also training (or index) records, compared by name.

    Parameters
    ----------
    train, test : iterables of str or path
        Record names or paths.
    train_what : str
        How the error message names ``train`` (e.g. ``"DS1, the index's records"``).

    Raises
    ------
    ParameterError
        A :class:`~simsearch.errors.SimsearchError` and a ``ValueError``, naming the
        shared records.
    """
    shared = shared_records(train, test)
    if shared:
        raise ParameterError(f"test records overlap {train_what}: {shared}")
