"""simsearch: similarity search for ECG heartbeats.

>>> from simsearch import BeatIndex, query_beat
>>> index = BeatIndex.build("indexes/small", ["100", "208"], data_dir="../shared/data/mitdb")
>>> result = query_beat(index, "208", sample=8000, k=10, exclude_record=True)
>>> result.vote.label

Names are imported on first use (PEP 562), so ``import simsearch`` and the command
line stay fast: nothing here loads TensorFlow until an encoder is needed.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "BeatIndex": "simsearch.store.index",
    "query_beat": "simsearch.label.query",
    "query_signal": "simsearch.label.query",
    "QueryResult": "simsearch.label.query",
    "Neighbor": "simsearch.label.query",
    "Vote": "simsearch.label.query",
    "annotate_record": "simsearch.label.annotate",
    "suggest_beats": "simsearch.label.annotate",
    "add_to_index": "simsearch.label.annotate",
    "Annotation": "simsearch.label.annotate",
    "write_annotation": "simsearch.label.export",
    "read_labels": "simsearch.label.expert",
    "Encoder": "simsearch.model.encoder",
    "Record": "simsearch.signal.records",
    "load_record": "simsearch.signal.records",
    **dict.fromkeys(
        ("SimsearchError", "RecordNotFoundError", "RecordFormatError", "LeadNotFoundError", "SignalQualityError",
         "AnnotationError", "SampleOutOfRangeError", "ParameterError", "EncoderMismatchError", "IndexFormatError",
         "IndexBusyError", "IndexWriteError", "BeatNotFoundError"),
        "simsearch.errors"),
}

__all__ = sorted(_EXPORTS) + ["__version__"]  # noqa: PLE0605 (the lazy exports are listed once, above)


def _installed_version() -> str:
    # importlib.metadata takes 40 ms to import, a tenth of the command line's budget: read only when asked
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simsearch")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name in _EXPORTS or name == "__version__":
        value = _installed_version() if name == "__version__" else getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'simsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
