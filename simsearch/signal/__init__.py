"""Signal stage: records in (WFDB), filtered signal, detected R-peaks, beats with their context."""
