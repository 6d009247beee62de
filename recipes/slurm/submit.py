"""Submit `foundation train` to SLURM with submitit (pip install 'foundation-mlip[slurm]'):

    python -m foundation.recipes.slurm.submit --nodes 2 --partition gpu -- \\
        distributed=ddp data=shards data.path=/shared/shards/ani1x name=ani1x_pretrain

Resources come from hydra_configs/launcher/submitit_slurm.yaml (the schema of Hydra's submitit
plugin), then the command-line options. Each SLURM task is one rank: submitit's
`TorchDistributedEnvironment` exports RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT,
and the task runs the training in-process with `resume=true`. On submitit's signal before the
time limit (SIGUSR2, `signal_delay_s`) every rank writes a checkpoint, then submitit requeues the
job (up to `max_num_timeout` times) and the run resumes from it (`Train`); a job that dies
resumes from its newest periodic checkpoint, so keep `trainer.ckpt_every` to minutes of training.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from foundation.errors import entry_point

# The config tree installed with the package (the repository's hydra_configs/).
LAUNCHER = Path(str(resources.files("foundation.configs") / "launcher" / "submitit_slurm.yaml"))
# Keys of the Hydra plugin's config that submitit's AutoExecutor takes (as slurm_<key>), and the
# ones it names differently.
_RENAMED = {"timeout_min": "timeout_min", "nodes": "nodes", "tasks_per_node": "tasks_per_node",
            "gpus_per_node": "gpus_per_node", "cpus_per_task": "cpus_per_task", "mem_gb": "mem_gb",
            "name": "name"}
_SLURM_ONLY = ("partition", "qos", "account", "constraint", "comment", "exclude", "gres", "cpus_per_gpu",
               "gpus_per_task", "mem_per_gpu", "mem_per_cpu", "signal_delay_s", "max_num_timeout",
               "array_parallelism", "setup", "srun_args", "additional_parameters")


class Train:
    """The callable each task runs. A scheduler's stop signal (submitit's preemption signal, USR2 by
    default, or SIGTERM/SIGUSR1) is taken by the trainer on every rank: it finishes the step, writes
    a checkpoint and returns; then the signal is raised again for submitit, whose handler on rank 0
    calls `checkpoint` (the same overrides, `resume=true`), requeues the job with `scontrol
    requeue` and exits -1 (so no result is written and the job is not done); the other ranks
    return. Without this, submitit's handler would requeue from inside a step, without a
    checkpoint, while the other ranks went on."""

    def __init__(self, overrides: list[str]):
        self.overrides = [o for o in overrides if not o.startswith("resume=")] + ["resume=true"]

    def __call__(self) -> int:
        import signal

        import submitit

        # overwrite: submitit reads a MASTER_PORT set in the job's environment, then refuses to export it
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        from foundation.errors import run_reporting
        from foundation.train.run import train

        results = []
        code = run_reporting("foundation train", lambda: results.append(train(self.overrides, verbose=True)))
        if code == 0 and results[0].status == "interrupted":
            signal.raise_signal(submitit.JobEnvironment._usr_sig())  # rank 0: checkpoint, requeue, exit
        return code

    def checkpoint(self):
        import submitit

        return submitit.helpers.DelayedSubmission(Train(self.overrides))  # resumes from its newest checkpoint


def executor_parameters(settings: dict) -> dict:
    """AutoExecutor.update_parameters(...) arguments from the launcher config's keys."""
    params = {_RENAMED[k]: v for k, v in settings.items() if k in _RENAMED and v is not None}
    params |= {f"slurm_{k}": v for k, v in settings.items() if k in _SLURM_ONLY and v not in (None, {})}
    return params


def load_settings(path: Path = LAUNCHER) -> dict:
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    # Hydra interpolations (${hydra.sweep.dir}, ${hydra.job.name}) mean nothing outside Hydra.
    return {k: v for k, v in config.items() if not k.startswith("_") and not (isinstance(v, str) and "${" in v)}


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="python -m foundation.recipes.slurm.submit [options] -- OVERRIDES ...")
    parser.add_argument("--config", type=Path, default=LAUNCHER, help="launcher YAML (Hydra submitit schema)")
    parser.add_argument("--folder", default="runs/.submitit/%j", help="submitit's logs and pickles")
    for key in ("nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "timeout_min"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, dest=key)
    for key in ("partition", "account", "qos", "name"):
        parser.add_argument(f"--{key}", dest=key)
    args, overrides = parser.parse_known_args(argv)
    overrides = [o for o in overrides if o != "--"]
    try:
        import submitit
    except ImportError:
        print("foundation.recipes.slurm.submit needs submitit: pip install 'foundation-mlip[slurm]'", file=sys.stderr)
        return 2
    settings = load_settings(args.config) | {k: v for k, v in vars(args).items()
                                             if k not in ("config", "folder") and v is not None}
    params = executor_parameters(settings)
    # submitit takes the requeue budget when the executor is made, not as a job parameter
    budget = {k: params.pop(k) for k in ("slurm_max_num_timeout",) if k in params}
    executor = submitit.AutoExecutor(folder=args.folder, **budget)
    executor.update_parameters(**params)
    job = executor.submit(Train(overrides))
    print(f"submitted job {job.job_id}: {settings.get('nodes', 1)} node(s) × "
          f"{settings.get('tasks_per_node', 1)} rank(s); logs in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
