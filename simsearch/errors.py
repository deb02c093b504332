"""Exceptions raised on bad input.

Every error a user can cause derives from :class:`SimsearchError`, so the CLI can turn
any of them into one clear line and exit code 2 while programming errors still show
their traceback.
"""


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SimsearchError(Exception):
    """Base class of every user-facing simsearch error."""


class RecordNotFoundError(SimsearchError, FileNotFoundError):
    """A record, its data directory or one of its files does not exist."""


class RecordFormatError(SimsearchError):
    """A header, signal or annotation file cannot be read (malformed or truncated)."""


class LeadNotFoundError(SimsearchError, KeyError):
    """The requested lead is not in the record."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class SignalQualityError(SimsearchError, ValueError):
    """The signal holds NaN values or is flat, so no beat can be taken from it."""


class AnnotationError(SimsearchError, ValueError):
    """Annotation symbols or labels that simsearch does not know."""


class SampleOutOfRangeError(SimsearchError, IndexError):
    """A query sample lies outside the record, or names no beat."""


class ParameterError(SimsearchError, ValueError):
    """An argument is malformed or outside its range (k, a sampling rate, a class list...)."""


class EncoderMismatchError(SimsearchError):
    """An index is opened with an encoder other than the one that built it."""


class IndexFormatError(SimsearchError):
    """An index directory is missing, incomplete or from an unknown version."""


class IndexBusyError(SimsearchError):
    """Another process has been writing the index for longer than a writer waits."""


class IndexWriteError(SimsearchError):
    """The index cannot be written (a read-only directory, a full disk); it is left as it was."""


class BeatNotFoundError(SimsearchError, LookupError):
    """Beat ids that the index does not hold (never stored, or their record was replaced)."""
