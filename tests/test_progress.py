"""Progress of long work shows in a log too: plain lines on piped stderr, none for quick work."""

from __future__ import annotations

import time

import pytest

from simsearch import progress


def test_piped_progress_is_plain_lines_and_quick_work_prints_nothing(capsys, monkeypatch):
    with progress.progress_bar("indexing", 3) as advance:
        advance()
    assert capsys.readouterr().err == ""  # quicker than PLAIN_INTERVAL_S: nothing

    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.05)
    with progress.progress_bar("indexing", 3) as advance:
        for name in ("100", "101", "103"):
            time.sleep(0.06)
            advance(name)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("indexing: 1/3 (33 %)") and lines[0].endswith(", 100")
    assert lines[-1].startswith("indexing: 3/3 (100 %)") and lines[-1].endswith("done")
    assert not any("\x1b" in line or "\r" in line for line in lines)

    with progress.progress_bar("indexing", 3, enabled=False) as advance:  # --json: nothing at all
        time.sleep(0.06)
        advance()
    assert capsys.readouterr().err == ""


def test_no_done_line_when_the_work_fails(capsys, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.05)
    with pytest.raises(RuntimeError), progress.progress_bar("indexing", 3):
        time.sleep(0.06)
        raise RuntimeError("bad record")
    assert "done" not in capsys.readouterr().err
