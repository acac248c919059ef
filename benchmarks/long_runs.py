"""Long runs stopped by Ctrl-C: how fast they stop, what they leave, their memory.

    python -m benchmarks.long_runs                    # every strategy and the sweep
    python -m benchmarks.long_runs --wait=120 --only=minibatch --memory

Each run is ``experiments.train`` (or ``experiments.sweep``) with
``--num_steps=100000000``, sent SIGINT after ``--wait`` seconds. Prints the
seconds from the signal to the exit, the exit code, ``summary.json``'s status
and step count, the rows of ``metrics.csv``, and the peak resident memory of
the process (``os.wait4``). ``--memory`` also runs a complete 10,000-step run
of the same command, the yardstick the long run's memory is compared with.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "random_search": ["experiments.train", "--strategy=random_search"],
    "random_local_search": ["experiments.train", "--strategy=random_local_search"],
    "gradient_descent": ["experiments.train", "--strategy=gradient_descent"],
    "minibatch": ["experiments.train", "--strategy=minibatch"],
    "sgd": ["experiments.train", "--strategy=sgd"],
    "sweep": ["experiments.sweep"],
}


def rows(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1  # less the header


def one(command, workdir: Path, num_steps: int, wait: float | None) -> dict:
    """Run ``command``; SIGINT after ``wait`` s (None: let it finish)."""
    args = [sys.executable, "-m", *command, f"--num_steps={num_steps}"]
    proc = subprocess.Popen(
        [*args, f"--workdir={workdir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    signalled = None
    if wait is not None:
        time.sleep(wait)
        signalled = time.perf_counter()
        proc.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(proc.pid, 0)
    exited = time.perf_counter()
    stderr = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    summary = json.loads((workdir / "summary.json").read_text())
    return {
        "exit": proc.returncode,
        "latency_s": None if signalled is None else exited - signalled,
        "status": summary["status"],
        "num_steps": summary["num_steps"],
        "metrics_rows": rows(workdir / "metrics.csv"),
        "max_rss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "traceback": "Traceback" in stderr,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wait", type=float, default=20.0)
    parser.add_argument("--only", default=",".join(COMMANDS))
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            out = one(COMMANDS[name], Path(tmp, name), 100_000_000, args.wait)
            print(name, json.dumps(out), flush=True)
            if args.memory:
                done = one(COMMANDS[name], Path(tmp, f"{name}-10k"), 10_000, None)
                ratio = out["max_rss_mb"] / done["max_rss_mb"]
                print(f"{name} 10,000 steps", json.dumps(done), f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
