"""Label stage: neighbors and their vote, expert labels, label spreading, suggestions, annotation."""
