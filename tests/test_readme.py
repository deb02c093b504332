"""Every snippet of the README runs, as written, on the test data.

The fenced blocks of README.md are read and sorted:

* the first block holds the two set-up commands; it is not run (it installs, and the
  first builds all 48 records), but it must be what ``.ci/run`` runs;
* the ``text`` block is the command-line synopsis: every option it names must exist;
* a ``bash`` block whose first line says ``not run by the tests`` holds commands that take
  minutes: each is parsed (``simsearch`` by its own command line, ``python scripts/...``
  by the script's argparse) and not run;
* every other ``bash`` block and every ``python`` block is run in a temporary directory,
  with ``../shared/data/mitdb`` replaced by the test data directory and
  ``/data/holter/rec1`` by two minutes of record 233 written at 250 Hz in both leads, without
  its annotation file. Relative paths (``indexes/small``, ``labels/``) land in that directory.

``simsearch`` commands run in this process through the command line's own entry (one
TensorFlow start-up for all of them); ``tests/test_cli.py`` runs the installed command.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO
from helpers import write_at_rate

README = REPO / "README.md"
DATA_IN_README = "../shared/data/mitdb"
HOLTER_IN_README = "/data/holter/rec1"
NOT_RUN = "not run by the tests"
SETUP = [
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/simsearch build indexes/mitdb --data-dir "
    "../shared/data/mitdb --records all && .venv/bin/simsearch query indexes/mitdb --record 208 --sample 61785 "
    "-k 10 --exclude-record",
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest -q",
]


@dataclass
class Block:
    language: str
    text: str
    line: int

    @property
    def commands(self) -> list[str]:
        """Lines that are not blank or comments, trailing comments removed."""
        return [" ".join(shlex.split(line, comments=True)) for line in self.text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]

    @property
    def parse_only(self) -> bool:
        return self.language == "bash" and NOT_RUN in self.text.splitlines()[0]


def blocks() -> list[Block]:
    text = README.read_text()
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```\s*$", text, flags=re.S | re.M):
        found.append(Block(match.group(1), match.group(2), text[: match.start()].count("\n") + 1))
    return found


def localize(text: str, data_dir: Path, holter: Path) -> str:
    return text.replace(DATA_IN_README, str(data_dir)).replace(HOLTER_IN_README, str(holter))


@pytest.fixture(scope="module")
def holter(data_dir, tmp_path_factory) -> Path:
    """Two minutes of 233 at 250 Hz in both its leads, no annotation file: a recording nobody has labeled."""
    path = write_at_rate("233", data_dir, 250, tmp_path_factory.mktemp("holter"), seconds=120, new_name="rec1",
                         both_leads=True)
    path.with_suffix(".atr").unlink()
    return path


def cli():
    import typer

    from simsearch.cli import app

    return typer.main.get_command(app)


def run_simsearch(args: list[str]) -> str:
    """One ``simsearch`` command, in this process; its standard output."""
    from typer.testing import CliRunner

    from simsearch.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"simsearch {shlex.join(args)}\n{result.output}\n{result.exception!r}"
    return result.output


class Parsed(Exception):
    """Raised by argparse once the options parsed, so a script stops before its work."""


def parse_script(args: list[str], monkeypatch) -> argparse.Namespace:
    script = REPO / args[0]
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, argv=None, namespace=None):
        raise Parsed(original(self, argv, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *args[1:]])
    with pytest.raises(Parsed) as parsed:
        runpy.run_path(str(script), run_name="__main__")
    return parsed.value.args[0]


# ---------------------------------------------------------------- the README's shape

def test_readme_opens_with_the_two_setup_commands_that_ci_runs():
    text = README.read_text()
    first = blocks()[0]
    assert first.language == "bash" and first.line < text.index("\n## ") + 1
    assert first.commands == [" ".join(shlex.split(c)) for c in SETUP]
    assert SETUP[0] in first.text and SETUP[1] in first.text  # word for word
    assert SETUP[1] in (REPO / ".ci" / "run").read_text()


def test_every_block_is_one_the_tests_handle():
    kinds = [b.language for b in blocks()]
    assert set(kinds) <= {"bash", "python", "text"}, kinds
    assert kinds.count("text") == 1 and kinds.count("python") == 1
    assert sum(b.parse_only for b in blocks()) == 1


def test_pipeline_section_names_every_stage_package():
    text = README.read_text()
    section = text[text.index("## Pipeline"):text.index("\n## ", text.index("## Pipeline") + 1)]
    packages = sorted(p.name for p in (REPO / "simsearch").iterdir() if (p / "__init__.py").is_file())
    for package in packages:
        if package != "models":  # the packaged encoder's files, not a stage
            assert f"`simsearch/{package}/`" in section, package
    for line in section.splitlines():
        stage = re.match(r"\* `simsearch/(\w+)/`", line)
        if stage:  # the modules a stage's line names are that stage's
            for module in re.findall(r"`(\w+\.py)`", line):
                assert (REPO / "simsearch" / stage.group(1) / module).is_file(), (stage.group(1), module)


def test_every_file_the_readme_names_exists():
    text = README.read_text()
    named = set(re.findall(r"(?<![\w/.])((?:scripts|simsearch|tests|\.ci)/[\w/.-]*\w)", text))
    assert len(named) > 10
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"


def test_synopsis_names_only_real_commands_and_options():
    group = cli()
    synopsis = next(b for b in blocks() if b.language == "text")
    seen = set()
    for line in synopsis.commands:
        words = line.split()
        assert words[0] == "simsearch", line
        command = group.commands[words[1]]
        seen.add(words[1])
        options = {o for p in command.params for o in p.opts + p.secondary_opts}
        for named in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line):
            assert named in options, f"simsearch {words[1]} has no option {named}"
    assert seen == set(group.commands), "the synopsis should show every command"


def test_slow_commands_parse(monkeypatch):
    block = next(b for b in blocks() if b.parse_only)
    group = cli()
    assert len(block.commands) >= 5
    for line in block.commands:
        args = shlex.split(line)
        if args[0] == "simsearch":
            command = group.commands[args[1]]
            with command.make_context(args[1], args[2:]) as ctx:
                assert ctx.params
        else:
            assert args[0] == "python" and args[1].startswith("scripts/"), line
            namespace = parse_script(args[1:], monkeypatch)
            assert str(vars(namespace)["data_dir"]) == DATA_IN_README, line


# ---------------------------------------------------------------- running the snippets

def fill_in_suggestions(path: Path) -> int:
    """What the expert does between two ``annotate`` runs: label every suggested beat
    (here: with the label the machine gave it). Returns the labels written."""
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert rows and all(row["label"] == "" for row in rows)
    for row in rows:
        row["label"] = row["current_label"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return len(rows)


def test_command_line_snippets_run(data_dir, holter, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runnable = [b for b in blocks()[1:] if b.language == "bash" and not b.parse_only]
    assert len(runnable) >= 3
    outputs: dict[str, str] = {}
    expert_labels = 0
    for block in runnable:
        for line in block.commands:
            args = shlex.split(localize(line, data_dir, holter))
            assert args[0] == "simsearch", line
            if "--labels" in args:
                expert_labels = fill_in_suggestions(Path(args[args.index("--labels") + 1]))
            outputs[line] = run_simsearch(args[1:])

    # what the snippets promise
    info = run_simsearch(["info", "indexes/small", "--json"])
    details = json.loads(info)
    assert details["records"] == ["100", "119", "208", "209", "rec1"]
    assert details["catalog"]["by_label_source"]["expert"] == expert_labels == 20
    by_path = next(json.loads(out) for line, out in outputs.items() if "--lead V1" in line)
    assert by_path["query"]["record"] == "119" and by_path["query"]["lead"] == "V1"
    assert len(by_path["neighbors"]) == 5
    assert not [n for n in by_path["neighbors"] if n["record"] == "119" and abs(n["sample"] - 2488) < 54]
    labels = tmp_path / "labels"
    assert {"rec1.pred", "rec1.pred.csv", "rec1.pred.json", "rec1.suggest.csv"} <= {p.name for p in labels.iterdir()}
    document = json.loads((labels / "rec1.pred.json").read_text())
    assert document["fs"] == 250 and document["summary"]["by_label_source"]["expert"] == 20
    detection = next(out for line, out in outputs.items() if "--task detection" in line)
    assert "100" in detection and "208" in detection


def test_python_snippet_runs(data_dir, holter, tmp_path, monkeypatch, capsys):
    import wfdb

    from simsearch import BeatIndex

    block = next(b for b in blocks() if b.language == "python")
    monkeypatch.chdir(tmp_path)
    code = compile(localize(block.text, data_dir, holter), f"{README}:{block.line}", "exec")
    exec(code, {"__name__": "readme"})

    printed = capsys.readouterr().out.splitlines()
    claimed = re.search(r"print\(result\.vote\.label, result\.vote\.confidence\)\s+# (.+)", block.text).group(1)
    assert printed[0] == claimed  # the vote the README shows is the one it gets
    assert any("no beat within 150 ms of sample 1811" in line for line in printed)
    index = BeatIndex.open(tmp_path / "indexes" / "small")
    try:
        assert [r["name"] for r in index.catalog.records()] == ["100", "119", "208", "209", "rec1"]
        rows = index.catalog.beats(record="rec1")
        assert (rows["label_source"] == "expert").sum() == 3
        assert index.catalog.record("rec1")["fs"] == 250
    finally:
        index.close()
    written = wfdb.rdann(str(tmp_path / "labels" / "rec1"), "pred")
    assert written.fs == 250 and written.sample.max() < 120 * 250
