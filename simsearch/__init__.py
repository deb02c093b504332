"""simsearch: similarity search for ECG heartbeats.

>>> from simsearch import BeatIndex
>>> index = BeatIndex.build("indexes/mitdb", ["100", "208"], data_dir="../shared/data/mitdb")
>>> result = index.query("208", sample=8000, k=10, exclude_record=True)
>>> result.vote.label
"""

from .encoder import Encoder
from .errors import (AnnotationError, EncoderMismatchError, IndexFormatError, LeadNotFoundError, RecordFormatError,
                     RecordNotFoundError, SampleOutOfRangeError, SignalQualityError, SimsearchError)
from .index import BeatIndex, Neighbor, QueryResult, Vote
from .records import Record, load_record

__all__ = [
    "BeatIndex", "Encoder", "QueryResult", "Neighbor", "Vote", "Record", "load_record",
    "SimsearchError", "RecordNotFoundError", "RecordFormatError", "LeadNotFoundError", "SignalQualityError",
    "AnnotationError", "SampleOutOfRangeError", "EncoderMismatchError", "IndexFormatError",
]
