"""The code base passes its own lint settings (``[tool.ruff]`` in pyproject.toml): pyflakes, pycodestyle,
bugbear, import order, pyupgrade, simplify, pylint's errors, and no stale ``noqa``."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install -e '.[test]'")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "simsearch", "scripts", "tests"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
