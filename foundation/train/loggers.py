"""Where metrics go: `metrics.csv` in the run directory always, wandb when asked (`logger=wandb`;
offline mode writes under the run directory and needs no network), and a progress bar with the loss
and atoms/s on rank 0."""

from __future__ import annotations

import csv
import secrets
from pathlib import Path

from foundation.files import replacing
from foundation.train.config import LoggerConfig


class CSVLogger:
    """One row per logged step; a column per metric name, blank where a row has no value.
    When a new metric name appears the file is rewritten (atomically) with the wider header.
    On resume, rows past the resumed step (logged by the interrupted run after its last
    checkpoint, and about to be logged again) are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None, columns: list[str] = ()):
        self.path = Path(path)
        self.columns: list[str] = ["step", *columns]  # the expected ones, in a readable order
        self.rows: list[dict] = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or ["step"])
                for row in reader:
                    if None in row.values() or not row.get("step", "").isdigit():
                        break  # a line cut short by a crash
                    if int(row["step"]) <= resume_step:
                        self.rows.append(row)
        self._rewrite()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: _fmt(v) for k, v in metrics.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)

    def _rewrite(self) -> None:
        with replacing(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        pass


class WandbLogger:
    def __init__(self, config: LoggerConfig, run_dir: Path, name: str, run_config: dict):
        import wandb  # optional dependency: only a run that asks for it needs it

        id_file = Path(run_dir) / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        id_file.write_text(run_id)
        self.run = wandb.init(project=config.wandb_project, entity=config.wandb_entity, name=name,
                              id=run_id, resume="allow", dir=str(run_dir), mode=config.wandb_mode,
                              config=run_config)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class Loggers:
    """Fans each call out to the configured loggers; does nothing off rank 0."""

    def __init__(self, config: LoggerConfig, run_dir: Path, name: str, run_config: dict,
                 resume_step: int | None, enabled: bool = True, columns: list[str] = ()):
        self.loggers = []
        if enabled:
            self.loggers.append(CSVLogger(Path(run_dir) / "metrics.csv", resume_step, columns))
            if config.wandb and config.wandb_mode != "disabled":
                self.loggers.append(WandbLogger(config, run_dir, name, run_config))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log(step, metrics)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


class ProgressBar:
    def __init__(self, enabled: bool, start: int, total: int):
        self.bar = None
        if enabled:
            from foundation.progress import progress_bar

            self.bar = progress_bar(initial=start, total=total, unit="step", dynamic_ncols=True)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is None:
            return
        self.bar.n = step
        shown = {k: metrics[k] for k in ("loss", "atoms_per_s", "lr") if k in metrics}
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=True)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.8g}"
    return str(value)
