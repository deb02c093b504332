"""Start-up time of the command line: median wall time of whole subprocesses.

Measures ``simsearch --help``, ``simsearch info IDX``, a query of a beat the index
stores, and a query of a record that does not exist (time to its error line), and, as
the baseline in the same run, ``python -c "import tensorflow"`` and loading the packaged
encoder: what every command paid when the command line imported TensorFlow. Each
command also runs once more in a probe that reports which heavy modules it imported.

    python scripts/cli_startup.py                      # builds a small index (119, 208) first
    python scripts/cli_startup.py --index IDX --runs 7 --json

The machine's other load shows in the figures: compare medians taken in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mitdb"
HEAVY = ("tensorflow", "scipy", "wfdb", "pandas", "matplotlib", "faiss", "sqlalchemy")
TARGETS_S = {"--help": 0.5, "info": 1.0, "query (stored beat)": 1.5, "query (bad record)": 1.0}

PROBE = """
import json, sys
from simsearch.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
finally:
    sys.stderr.write("\\nloaded: " + json.dumps([m for m in {heavy!r} if m in sys.modules]) + "\\n")
"""


def cli_prefix() -> list[str]:
    """The installed ``simsearch`` script beside this interpreter, else ``python -m simsearch``."""
    script = Path(sys.executable).parent / "simsearch"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "simsearch"]


def wall(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def measure(name: str, command: list[str], runs: int, env: dict, expect: int = 0) -> dict:
    times = []
    for _ in range(runs):
        seconds, proc = wall(command, env)
        if proc.returncode != expect:
            raise SystemExit(f"{name}: exit code {proc.returncode}, expected {expect}:\n{proc.stderr}")
        times.append(seconds)
    return {"command": name, "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3), "runs": runs}


def loaded_modules(args: list[str], env: dict) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          env=env)
    return json.loads(proc.stderr.rsplit("loaded: ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="An index to query [default: build one of 119 and 208]")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SIMSEARCH_DATA") or DEFAULT_DATA))
    parser.add_argument("--record", default="208", help="A record the index stores")
    parser.add_argument("--sample", type=int, default=61785, help="A sample of that record")
    parser.add_argument("--runs", type=int, default=5, help="Runs per command (the median is reported)")
    parser.add_argument("--json", action="store_true", help="One JSON object on stdout")
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("SIMSEARCH_DATA", None)
    cli = cli_prefix()
    with tempfile.TemporaryDirectory(prefix="simsearch-startup-") as tmp:
        index = args.index
        if index is None:
            index = Path(tmp) / "idx"
            seconds, proc = wall([*cli, "build", str(index), "--data-dir", str(args.data_dir), "--records",
                                  "119,208", "--json"], env)
            if proc.returncode:
                raise SystemExit(f"building the index failed:\n{proc.stderr}")
            if not args.json:
                print(f"built {index} in {seconds:.1f} s", file=sys.stderr)
        commands = {
            "--help": (["--help"], 0),
            "info": (["info", str(index)], 0),
            "query (stored beat)": (["query", str(index), "--record", args.record, "--sample", str(args.sample)], 0),
            "query (bad record)": (["query", str(index), "--record", "no-such-record", "--sample", "1",
                                    "--data-dir", str(args.data_dir)], 2),
        }
        rows = []
        for name, (argv, code) in commands.items():
            row = measure(name, [*cli, *argv], args.runs, env, code)
            row["target_s"] = TARGETS_S[name]
            row["imports"] = loaded_modules(argv, env)
            rows.append(row)
        baselines = {
            "import tensorflow": [sys.executable, "-c", "import tensorflow"],
            "Encoder.load() (packaged model)": [sys.executable, "-c", "from simsearch.model.encoder import Encoder; "
                                                                      "Encoder.load()"],
        }
        for name, command in baselines.items():
            rows.append({**measure(name, command, args.runs, env), "target_s": None, "imports": ["tensorflow"]})
    if args.json:
        print(json.dumps({"cli": cli, "index": str(args.index or "built"), "cpus": os.cpu_count(), "rows": rows}))
        return
    width = max(len(r["command"]) for r in rows)
    print(f"{'command':<{width}}  median s  min s  max s  target s  heavy imports   ({args.runs} runs, "
          f"{os.cpu_count()} CPUs)")
    for r in rows:
        target = f"{r['target_s']:.1f}" if r["target_s"] is not None else "-"
        print(f"{r['command']:<{width}}  {r['median_s']:8.2f}  {r['min_s']:5.2f}  {r['max_s']:5.2f}  {target:>8}  "
              f"{', '.join(r['imports']) or '-'}")


if __name__ == "__main__":
    main()
