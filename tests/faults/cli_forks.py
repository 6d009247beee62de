"""Many `foundation` command lines, each in its own process, without paying Python's and torch's
start-up for each: a driver process imports the command line once, then forks one child per
command line; the child runs `foundation.cli.main.main(argv)` (what the `foundation` script
runs) with its stdout and stderr sent to files and exits with its code. An exception that
escapes is printed as a traceback with exit code 1, as the interpreter would; a signal (SIGFPE,
SIGSEGV, the SIGALRM of `timeout`) shows as a negative code, like `subprocess`'s.

    outcomes = run_commands([["evaluate", "--model", ...], ...], tmp_path)
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FOUNDATION_DEBUG": "",
       "TQDM_DISABLE": "1"}


@dataclasses.dataclass
class Outcome:
    argv: list[str]
    code: int  # exit code; -N: killed by signal N
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return f"foundation {' '.join(self.argv)}\n  exit {self.code}\n  stderr: {self.stderr[-3000:]}"


def run_commands(commands: list[list[str]], workdir: Path, timeout: int = 120) -> list[Outcome]:
    """Run each command line in its own forked process (at most `timeout` s each)."""
    workdir = Path(workdir)
    jobs = workdir / "cli_jobs.json"
    jobs.write_text(json.dumps({"commands": commands, "timeout": timeout}))
    done = subprocess.run([sys.executable, __file__, str(jobs)], env=ENV, capture_output=True, text=True,
                          timeout=timeout * len(commands) + 120)
    assert done.returncode == 0, f"the driver failed ({done.returncode}): {done.stderr[-3000:]}"
    results = json.loads((workdir / "cli_results.json").read_text())
    return [Outcome(c, r["code"], Path(r["stdout"]).read_text(errors="replace"),
                    Path(r["stderr"]).read_text(errors="replace"), r["seconds"]) for c, r in zip(commands, results)]


def _drive(jobs_file: Path) -> None:
    jobs = json.loads(jobs_file.read_text())
    import matplotlib  # noqa: F401  (loaded once, shared by every child: the fine-tune report's plot)

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  (torch.optim imports it on first use: 5 s in every training child)

    import foundation.calculators  # noqa: F401
    import foundation.data.ase_io  # noqa: F401
    import foundation.evaluation.evaluate  # noqa: F401
    import foundation.finetuning  # noqa: F401
    import foundation.train.trainer  # noqa: F401
    from foundation.cli.main import main

    results = []
    for k, argv in enumerate(jobs["commands"]):
        out, err = jobs_file.parent / f"cli_{k}.out", jobs_file.parent / f"cli_{k}.err"
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child(main, argv, out, err, jobs["timeout"])
        _, status = os.waitpid(pid, 0)
        results.append({"code": os.waitstatus_to_exitcode(status), "stdout": str(out), "stderr": str(err),
                        "seconds": time.perf_counter() - started})
    (jobs_file.parent / "cli_results.json").write_text(json.dumps(results))


def _child(main, argv, out: Path, err: Path, timeout: int) -> None:
    code = 1
    try:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        signal.alarm(timeout)  # a hang ends as -SIGALRM, a failure like any signal
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001  (what the interpreter does with an uncaught exception)
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _drive(Path(sys.argv[1]))
