"""The training loop. `Trainer(config)` builds the parts (build.py) and restores a checkpoint when
resuming; `train()` runs the loop, reading top to bottom like nanoGPT's: batch, loss, backward,
clip, step, EMA; log, validate, checkpoint; at the end export the EMA weights as the run's
`model.safetensors`."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from foundation.errors import UserError
from foundation.train import build, checkpoint
from foundation.train.config import RunConfig
from foundation.train.ema import EMA
from foundation.train.engines import build_engine
from foundation.train.freeze import freeze, resolve
from foundation.train.loggers import Loggers, ProgressBar
from foundation.train.anchor import Anchor
from foundation.train.loss import LossConfig, energy_force_loss
from foundation.train.references import fit_references
from foundation.train.selection import resolve as resolve_selection
from foundation.train.selection import validation_profile
from foundation.train.significance import standard_error
from foundation.train.signals import StopRequest
from foundation.train.state import TrainState, config_changes, plain, write_config
from foundation.train.validate import metrics_from_sums, validate

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TrainingDiverged(UserError):
    """Too many consecutive steps with a non-finite loss or gradient."""


@dataclasses.dataclass
class TrainResult:
    status: str  # completed | early_stopped | interrupted
    step: int
    run_dir: Path
    model_path: Path | None
    metrics: dict
    best_step: int = 0  # the step whose weights were exported (early stopping)
    kept_start: bool = False  # no step beat the start on the selection metric: the start was written
    selection: str = ""  # the metric that chose the weights, in words
    note: str | None = None  # one line for the user when `kept_start`


class Trainer:
    def __init__(self, config: RunConfig):
        self.config = tc = config.trainer
        self.run = config
        self.run_dir = config.run_dir
        self.state = TrainState()
        self.best_weights: dict | None = None  # EMA weights of the best validation (early stopping)
        self._start_rows: list | None = None  # per-structure errors of the step-0 validation
        self._saved_step = -1
        self.dtype = DTYPES[tc.dtype]
        self.engine = build_engine(config.distributed, tc)
        self._stop, self._stop_agreed = None, False  # the loop's StopRequest; all ranks saw one
        if self.engine.lr_scale != 1.0:  # distributed.lr_scaling, for this world size
            s = self.engine.lr_scale
            self.config = tc = dataclasses.replace(tc, lr=tc.lr * s, min_lr=tc.min_lr * s)
        _seed(tc.seed + self.engine.rank)
        self.data = build.build_data(config)
        self.heads = list(self.data.fidelities)
        self.loss_config = LossConfig(tc.energy_weight, tc.forces_weight, dict(tc.fidelity_weights), tc.size_weighting)
        self.selection = resolve_selection(tc.early_stopping_metric, self.heads,
                                           lambda: validation_profile(self.data.val_batches(), self.heads),
                                           tc.forces_weight)

        resumed = self._find_checkpoint()
        model = self._build_model(resumed)
        self.freeze_patterns = resolve(model, tc.freeze, self.heads)  # `auto` spelled out, for reports
        self.frozen = freeze(model, tc.freeze, self.heads)
        model = model.to(device=self.engine.device, dtype=self.dtype)
        self.anchor = (Anchor(model, tc.l2sp, (resumed or {}).get("anchor"), tc.l2sp_by_name)
                       if tc.l2sp or any(tc.l2sp_by_name.values()) else None)
        self.forward_model = self.engine.wrap(model, build.build_optimizer(model, tc))
        self.schedule = build.build_schedule(self.engine.optimizer, tc)
        self.ema = EMA(self.model, tc.ema_decay)
        self.stream = self.data.train_stream(seed=tc.seed, rank=self.engine.rank,
                                             world_size=self.engine.world_size)
        self.resplit: str | None = None  # one line when the data position was re-split over new ranks
        if resumed is not None:
            self._restore(resumed)
        self.resumed_from = None if resumed is None else resumed["step"]
        if self.engine.is_rank0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_config(self.run_dir / "config.yaml", plain(config))
        logged_config = plain(config) | {"data_manifest_hash": getattr(self.data, "manifest_hash", None),
                                         "world_size": self.engine.world_size}
        self.loggers = Loggers(config.logger, self.run_dir, config.name, logged_config,
                               resume_step=self.resumed_from, enabled=self.engine.is_rank0,
                               columns=metric_names(self.heads))

    def _build_model(self, resumed: dict | None) -> torch.nn.Module:
        """Resuming: the architecture the checkpoint was trained with (its weights come later).
        Otherwise fresh or from `init_from`, with reference energies fitted for the heads that
        need them (`fitted_references` {fid: {Z: eV}}, `reference_fits` {fid: ReferenceFit})."""
        self.fitted_references, self.reference_fits = {}, {}
        if resumed is not None:
            from foundation.models import build_model

            return build_model(resumed["model_config"])
        model, to_fit = build.build_model(self.run, self.data)
        self.reference_fits = fit_references(model, self.data, to_fit, from_prior=bool(self.config.init_from),
                                             ridge=self.config.reference_ridge)
        self.fitted_references = {fid: fit.energies for fid, fit in self.reference_fits.items()}
        return model.train()  # a loaded model comes in eval mode

    @property
    def model(self) -> torch.nn.Module:
        return self.engine.model

    @property
    def n_parameters(self) -> tuple[int, int]:
        """(all, trainable) parameter counts."""
        params = list(self.model.parameters())
        return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)

    # ---- the loop -------------------------------------------------------------------------
    def train(self, stop_at: int | None = None) -> TrainResult:
        """Train to `max_steps` (or stop early), checkpoint, export. `stop_at` ends the run at
        that step as a signal would (checkpoint, no export): a job with a step budget, or a
        test of resuming."""
        bar = ProgressBar(self.engine.is_rank0 and self.run.logger.progress_bar,
                          self.state.step, self.config.max_steps)
        model_path = None
        try:
            status, last_val = self._loop(bar, stop_at)
            if status != "interrupted":
                if self._saved_step != self.state.step:
                    self.save()
                model_path = self.export(last_val)
        finally:
            bar.close()
            self.close()
        kept_start = status != "interrupted" and self._floor and self.state.best_step == 0 \
            and self.best_weights is not None
        return TrainResult(status, self.state.step, self.run_dir, model_path, last_val,
                           self.state.best_step if self.best_weights is not None else self.state.step,
                           kept_start, self.selection.describe(), self._not_better() if kept_start else None)

    @property
    def _floor(self) -> bool:
        """Early stopping keeps the start when no step beats it (`trainer.allow_worse` turns it off)."""
        return self.config.early_stopping_patience > 0 and not self.config.allow_worse

    def _not_better(self) -> str:
        state = self.state
        trained = (f"its best, {self.selection.format(state.best_trained_metric)} at step "
                   f"{state.best_trained_step}," if math.isfinite(state.best_trained_metric) else "it")
        beyond = (f" by more than its sampling error ({self.config.significance:g} × "
                  f"{self.selection.format(state.start_error)}, bootstrap over validation molecules)"
                  if self.config.significance > 0 else "")
        return (f"not better: fine-tuning did not improve on the start's "
                f"{self.selection.describe()} ({self.selection.format(state.start_metric)}; {trained} "
                f"is not lower{beyond}), so the starting weights are written (trainer.allow_worse=true writes the "
                "best step instead)")

    def _loop(self, bar: ProgressBar, stop_at: int | None) -> tuple[str, dict]:
        tc, state = self.config, self.state
        batches = iter(self.stream)
        val = {}
        if state.step == 0 and (tc.val_at_start or self._floor):
            val = self.evaluate()
            self.loggers.log(0, val)
            if self._floor:
                self._observe_start(val)
        atoms, t0 = 0, time.perf_counter()
        cpu_end = None if tc.cpu_seconds is None else time.process_time() + tc.cpu_seconds
        with StopRequest() as stop:
            self._stop = stop
            while state.step < tc.max_steps:
                micro = [next(batches).to(self.engine.device, self.dtype) for _ in range(tc.accumulate)]
                state.step += 1
                lr = self.schedule.set_step(state.step)
                metrics = self.train_step(micro if tc.accumulate > 1 else micro[0])
                atoms += sum(b.n_atoms for b in micro)
                last = state.step == tc.max_steps or (cpu_end is not None and time.process_time() >= cpu_end)
                row = {}
                if state.step % tc.log_every == 0 or last:
                    # Metrics are reduced over ranks only when logged: one scalar collective per
                    # step otherwise (train_step's flags), each a point where ranks wait. Uneven:
                    # a rank whose batches lacked a fidelity has no loss part for it.
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    row = self.engine.all_reduce(metrics, "mean", uneven=True) | {
                        "lr": lr, "atoms_per_s": self.engine.world_size * atoms / elapsed,
                        "memory_mb": self.engine.all_reduce({"m": self.engine.memory_mb()}, "max")["m"]}
                    row |= self._skipped_data()
                    bar.update(state.step, row)
                    atoms, t0 = 0, time.perf_counter()
                stop_early = False
                if state.step % tc.val_every == 0 or last:
                    val = self.evaluate()
                    row |= val
                    stop_early = self._should_stop_early(val)
                if row:
                    self.loggers.log(state.step, row)
                if stop_early:
                    return "early_stopped", val
                if state.step % tc.ckpt_every == 0:
                    self.save()
                if self._stop_agreed or state.step == stop_at:
                    self.save()
                    return "interrupted", val
                if last:
                    break
        return "completed", val

    def train_step(self, batch) -> dict[str, float]:
        """One optimiser step on `batch` (already on the device), or on a list of batches
        (`trainer.accumulate`): their gradients add up, each loss divided by their number, and
        under DDP only the last one's backward all-reduces. A step whose loss or gradient is not
        finite changes nothing but the counters; too many in a row stop the run. The returned
        metrics are this rank's (the loop reduces them when it logs). Ranks agree in one scalar
        collective per step: on the non-finite flag and, riding with it, a stop request (a
        signal to any rank), which the loop acts on at the end of the step (`_stop_agreed`)."""
        state = self.state
        micro = batch if isinstance(batch, list) else [batch]
        loss, parts = 0.0, {}
        for i, b in enumerate(micro):
            with self.engine.no_sync(i < len(micro) - 1):
                value, terms = self._backward(b, len(micro))
            loss += value / len(micro)
            for k, v in terms.items():
                parts[k] = parts.get(k, 0.0) + float(v) / len(micro)
        grad_norm = self.engine.clip_grad_norm(self.config.grad_clip)
        bad = not (math.isfinite(loss) and math.isfinite(float(grad_norm)))
        stop = self._stop is not None and self._stop.requested
        flags = self.engine.all_reduce({"nonfinite": float(bad), "stop": float(stop)}, "max")
        self._stop_agreed = flags["stop"] > 0
        if flags["nonfinite"] > 0:
            self.engine.skip_step()
            state.nonfinite_total += 1
            state.nonfinite_run += 1
            if state.nonfinite_run >= self.config.max_nonfinite_steps:
                last = checkpoint.list_checkpoints(self.run_dir)
                kept = f"the last good checkpoint is {last[-1][1]}" if last else "no checkpoint was written"
                raise TrainingDiverged(f"step {state.step}: loss or gradient not finite for "
                                       f"{state.nonfinite_run} steps in a row; stopped ({kept})")
            return {"nonfinite_steps": state.nonfinite_total}
        self.engine.step()
        self.ema.update(self.model)
        state.nonfinite_run = 0
        metrics = {"loss": loss, "grad_norm": float(grad_norm),
                   "nonfinite_steps": state.nonfinite_total}
        metrics |= {f"loss/{k}": float(v) for k, v in parts.items()}
        return metrics

    def _backward(self, batch, n: int) -> tuple[float, dict]:
        """Forward and backward of one batch, its loss divided by `n`; (loss, its parts)."""
        from foundation.models.prediction import predict

        force_heads = self.loss_config.force_heads(batch, self.heads)
        pred = predict(self.forward_model, batch, self.heads, force_heads, create_graph=True)
        loss, parts = energy_force_loss(pred, batch, self.loss_config)
        if self.anchor is not None:
            penalty = self.anchor.penalty(self.model)
            parts["l2sp"] = penalty.detach()
            loss = loss + penalty
        # Backward even when the loss is NaN: under DDP every rank must join the gradient
        # all-reduce, after which all ranks see the same non-finite norm and skip together.
        self.engine.backward(loss / n if n > 1 else loss)
        return float(loss.detach()), parts

    def evaluate(self) -> dict[str, float]:
        """Validation metrics of the EMA weights."""
        from foundation.models.prediction import predict

        def predict_fn(batch, heads, force_heads):
            return predict(self.model, batch, heads, force_heads, create_graph=False)

        # The start's per-structure errors give its metric's sampling error (the floor's margin).
        rows = [] if self._floor and self.config.significance > 0 and self.state.step == 0 else None
        with self.ema.applied(self.model):
            self.model.eval()
            try:
                val = validate(predict_fn, self.data.val_batches(), self.heads, self.loss_config,
                               self.engine.device, self.dtype, self.engine.all_reduce, rows=rows)
            finally:
                self.model.train()
        self._start_rows = rows
        value = self.selection.value(val)
        if self.selection.composite and value is not None:
            val["val/selection"] = value  # the number early stopping compares, in metrics.csv
        return val

    # ---- stopping, checkpoints, export ------------------------------------------------------
    def _selected(self, val: dict[str, float]) -> float | None:
        """The selection metric of `val`; a clear error when validation lacks one of its terms."""
        value = self.selection.value(val)
        if value is None and val and (self.config.early_stopping_patience or self.config.schedule == "plateau"):
            raise UserError(f"trainer.early_stopping_metric={self.config.early_stopping_metric!r} "
                            f"({self.selection.name}): validation reports {', '.join(sorted(val))}")
        return value

    def _observe_start(self, val: dict[str, float]) -> None:
        """The start (step 0) is the first candidate: a later step must beat it to be kept."""
        value = self._selected(val)
        if value is not None:
            self.state.start_metric = self.state.best_metric = value
            self.state.best_step, self.state.best_metrics = 0, dict(val)
            self.best_weights = self._ema_weights()
            if self._start_rows:
                self.state.start_error = standard_error(self._start_rows, self.metric_of_sums,
                                                        self.config.bootstrap_draws, self.config.seed)

    def _should_stop_early(self, val: dict[str, float]) -> bool:
        value = self._selected(val)
        if value is None:
            return False
        self.schedule.observe(value)
        improved = value < self.state.best_trained_metric
        if improved:
            self.state.best_trained_metric, self.state.best_trained_step = value, self.state.step
        if value < self.state.best_metric and value < self._floor_value():
            self.state.best_metric, self.state.bad_evals = value, 0
            self.state.best_step, self.state.best_metrics = self.state.step, dict(val)
            if self.config.early_stopping_patience:
                self.best_weights = self._ema_weights()  # early stopping exports the best, not the last
            return False
        if improved:  # the best step so far, not yet beyond the start's sampling error: still learning
            self.state.bad_evals = 0
            return False
        self.state.bad_evals += 1
        patience = self.config.early_stopping_patience
        return patience > 0 and self.state.bad_evals >= patience

    def _floor_value(self) -> float:
        """What a step must be below to count as better than the start: the start's value minus
        `trainer.significance` times its bootstrap standard error (train/significance.py), so a
        validation number that moved by chance is not taken for an improvement; inf without a
        floor. The error is computed alike on every rank (each validates the whole split)."""
        start = self.state.start_metric
        if not self._floor or not math.isfinite(start):
            return math.inf
        return start - self.config.significance * self.state.start_error

    def metric_of_sums(self, sums: dict) -> float | None:
        """The selection metric of validation sums (`validate`'s, or a bootstrap resample's)."""
        return self.selection.value(metrics_from_sums(sums, self.heads, self.loss_config))

    def _skipped_data(self) -> dict[str, float]:
        """Samples and shards left out so far under `data.on_error=skip`, summed over ranks;
        logged (to metrics.csv) once there are any."""
        counts = {"skipped_samples": getattr(self.data, "skipped", 0) / self.engine.world_size
                  + getattr(self.stream, "skipped_samples", 0),
                  "skipped_shards": len(getattr(self.stream, "failed_shards", {}))}
        counts = self.engine.all_reduce(counts, "sum")
        return {k: round(v) for k, v in counts.items() if round(v)}

    def save(self) -> Path | None:
        """Rank 0 writes the checkpoint, with every rank's data position and RNG states; an
        engine that shards its state has each rank write its shard first."""
        per_rank = {"data": self.stream.state_dict(), "rng": checkpoint.rng_state()}
        shard = self.engine.shard_state_dict()
        if shard is not None:
            checkpoint.save_shard(self.run_dir, self.state.step, self.engine.rank, shard)
            self.engine.barrier()  # all shards on disk before the checkpoint that names them
        parts = {
            "engine": self.engine.state_dict(),
            "ema": self.ema.state_dict(),
            "schedule": self.schedule.state_dict(),
            **per_rank,
            "ranks": self.engine.all_gather_object(per_rank),
            "shards": 0 if shard is None else self.engine.world_size,
            "trainer": dataclasses.asdict(self.state),
            "best_weights": self.best_weights,
            "anchor": None if self.anchor is None else self.anchor.state_dict(),
            "model_config": dataclasses.asdict(self.model.config),
            "run_config": plain(self.run),
        }
        path = None
        if self.engine.is_rank0:
            path = checkpoint.save_checkpoint(self.run_dir, self.state.step, parts,
                                              keep=self.config.keep_checkpoints)
        self._saved_step = self.state.step
        self.engine.barrier()
        return path

    def _find_checkpoint(self) -> dict | None:
        found = checkpoint.latest_checkpoint(self.run_dir) if self.run.resume else None
        if found is None and not self.run.resume and checkpoint.list_checkpoints(self.run_dir):
            raise UserError(f"{self.run_dir} already holds checkpoints of a run: pass resume=true "
                            f"to continue it, or name=<new name> for a new run")
        self._resume_path = None if found is None else found[0]
        return None if found is None else found[1]

    def _restore(self, saved: dict) -> None:
        self.engine.load_state_dict(saved["engine"])
        if saved.get("shards"):
            if saved["shards"] != self.engine.world_size:
                raise UserError(f"{self._resume_path}: written by {saved['shards']} ranks whose optimiser "
                                f"states are sharded (ZeRO shards are not re-split); resume it with "
                                f"{saved['shards']} ranks, not {self.engine.world_size}")
            self.engine.load_shard_state_dict(
                checkpoint.read_shard(self.run_dir, saved["step"], self.engine.rank))
        ranks = saved.get("ranks") or [{"data": saved["data"], "rng": saved["rng"]}]
        # The data position holds every rank's (a stream re-splits it over another world size);
        # a rank the checkpoint did not have takes rank 0's RNG states.
        mine = ranks[self.engine.rank] if self.engine.rank < len(ranks) else ranks[0]
        self.ema.load_state_dict(saved["ema"])
        self.schedule.load_state_dict(saved["schedule"])
        self.stream.load_state_dict(mine["data"])
        self.resplit = getattr(self.stream, "resplit", None)
        self.state = TrainState(**saved["trainer"])
        self.best_weights = saved.get("best_weights")
        changed = [k for k in config_changes(saved.get("run_config", {}), plain(self.run)) if k != "resume"]
        if changed:
            warnings.warn(f"resuming {self.run_dir} with a changed config: {', '.join(changed)}", stacklevel=2)
        self._saved_step = self.state.step
        checkpoint.set_rng_state(mine["rng"])

    def _ema_weights(self) -> dict[str, torch.Tensor]:
        with self.ema.applied(self.model):
            return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def export(self, metrics: dict[str, float]) -> Path | None:
        """Write the EMA weights as `<run_dir>/model.safetensors` (rank 0): with early stopping,
        those of the best validation (the run goes on `patience` validations past it)."""
        from foundation.hub.format import save_model
        from foundation.models.states import model_states, set_states

        path = self.run_dir / "model.safetensors"
        if self.engine.is_rank0:
            # the states it was trained on: the start's (a fine-tune's pretrained model) and the data's
            (charges, multiplicities), (data_charges, data_multiplicities) = model_states(self.model), _states(self.data)
            set_states(self.model, {*charges, *data_charges}, {*multiplicities, *data_multiplicities})
            best = self.best_weights is not None
            training = {"run": self.run.name, "steps": self.state.step, "fidelities": self.heads,
                        "init_from": self.config.init_from, "frozen_parameters": len(self.frozen),
                        "exported_step": self.state.best_step if best else self.state.step}
            metadata = {"metrics": self.state.best_metrics if best else metrics, "training": training,
                        "data_manifest_hash": getattr(self.data, "manifest_hash", None)}
            if best:
                current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.model.load_state_dict(self.best_weights)
                try:
                    save_model(self.model, path, metadata)
                finally:
                    self.model.load_state_dict(current)
            else:
                with self.ema.applied(self.model):
                    save_model(self.model, path, metadata)
        self.engine.barrier()
        return path

    def close(self) -> None:
        self.loggers.close()
        self.engine.close()


def metric_names(heads: list[str]) -> list[str]:
    """The metrics a run logs, in the order metrics.csv shows them."""
    train = ["loss", *[f"loss/{h}{part}" for h in heads for part in ("", "/energy", "/forces")]]
    val = ["val/loss", *[f"val/{h}/{m}" for h in heads
                         for m in ("energy_mae", "energy_rmse", "forces_mae", "forces_rmse")]]
    return [*train, "lr", "grad_norm", "atoms_per_s", "memory_mb", "nonfinite_steps", *val]


def _seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _states(data) -> tuple[list[int], list[int]]:
    """(charges, multiplicities) of the training structures: from a shard set's manifest, or from
    the samples of data held in memory; neutral singlets for a source that cannot say."""
    manifest = getattr(data, "manifest", None)
    if manifest is not None:
        return manifest.states(data.config.train_split)
    train = getattr(data, "train", None)
    if train:
        return sorted({s.charge for s in train}), sorted({s.multiplicity for s in train})
    return [0], [1]
