"""`adapt()`: the loop from molecules to a CC-accurate model within a CPU budget (the steps: see
`foundation.recipes.adapt`)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from foundation.errors import UserError
from foundation.files import replacing, write_json
from foundation.recipes.adapt import choose, costs as costs_module, labelling, sampling, tuning
from foundation.recipes.adapt.ledger import Ledger

# The published ANI-1x, not our ani-1x-ccsdt: users bring their own molecules, often larger than
# our CC set, where ani-1x-ccsdt is worse than ANI-1x; and the measured 3 h runs end as well or
# better from it (their own held-out frames: 0.38 from ANI-1x's 1.06, 0.56 from ani-1x-ccsdt's
# 0.72; docs/adapt.md), the CC labels of a run moving the start more than its head start.
DEFAULT_START = "ani-1x"
CC = tuning.CC
# Shares of the labelling budget, not yet measured: at 5-6 heavy atoms an MP2 energy + forces costs
# about a seventh of a CCSD(T) energy (costs.py) and brings 3N + 1 numbers, so half goes to each.
DEFAULT_MIX = {"ccsdt_ccpvdz": 0.5, "mp2_ccpvdz": 0.5}
HOLDOUT_SHARE = 0.25  # --holdout auto: 3 conformers per molecule while they cost at most this share of labelling
HOLDOUT_MAX_SHARE = 0.5  # ... and a held-out set costing more than this share is refused
OVERPLAN = 1.3  # picks planned beyond a round's budget, for admission to cut where the calibrated costs say
N_TEMPERATURES = 4  # trajectories per start over a temperature range
FIXED_PER_MEMBER = 3.0  # CPU s a member's fine-tune costs besides its steps, until a round has measured it
FINETUNE_MARGIN = 4.0  # a later round keeps this many times the dearest fine-tune so far (more labels, longer runs)


@dataclasses.dataclass
class AdaptResult:
    model_path: Path  # default head ccsdt_ccpvdz
    report_path: Path
    budget_seconds: float
    spent_seconds: float  # CPU seconds by the run's own accounting (calculations + this program)
    heldout_start: float  # kcal/mol, relative-energy RMSE vs CCSD(T) on the held-out conformers
    heldout_after: float
    rounds: list[dict]


def parse_budget(text: str | float) -> float:
    """CPU seconds of "3h", "90m", "45s" (a number alone: seconds)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([hms]?)\s*", str(text))
        if match is None:
            raise UserError(f"--budget {text!r}: give CPU time like 3h, 90m or 600s")
        seconds = float(match.group(1)) * {"h": 3600, "m": 60, "s": 1, "": 1}[match.group(2)]
    if seconds <= 0:
        raise UserError(f"--budget {text!r}: must be more than 0")
    return seconds


def parse_temperatures(text: str | Sequence[float]) -> tuple[float, ...]:
    """"300..600" → 4 temperatures from 300 to 600 K; "300" → (300,)."""
    if not isinstance(text, str):
        values = tuple(float(t) for t in text)
    else:
        try:
            low, _, high = text.partition("..")
            low, high = float(low), float(high or low)
        except ValueError:
            raise UserError(f"--temperature {text!r}: give a temperature or a range, like 300 or 300..600") from None
        values = (low,) if high == low else tuple(low + (high - low) * k / (N_TEMPERATURES - 1)
                                                   for k in range(N_TEMPERATURES))
    if not values or min(values) <= 0:
        raise UserError(f"--temperature {text!r}: temperatures must be above 0 K")
    return values


def parse_mix(text: str | dict | None) -> dict[str, float]:
    """"ccsdt_ccpvdz=0.7,mp2_ccpvdz=0.3" → shares summing to 1; CCSD(T) must be among them."""
    from foundation.pipelines.label.levels import get_level

    if text is None:
        mix = dict(DEFAULT_MIX)
    elif isinstance(text, dict):
        mix = {str(k): float(v) for k, v in text.items()}
    else:
        try:
            mix = {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(",") if part.strip())}
        except ValueError:
            raise UserError(f"--mix {text!r}: give level=share pairs, like ccsdt_ccpvdz=0.7,mp2_ccpvdz=0.3") from None
    for fid in mix:
        get_level(fid)
    if mix.get(CC, 0) <= 0 or any(v < 0 for v in mix.values()):
        raise UserError(f"--mix {text!r}: {CC} needs a share above 0 (its head is the model's), none below 0")
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items() if v > 0}


def adapt(smiles: Sequence[str] = (), out: str | os.PathLike = "adapt", budget: str | float = "3h",
          structures: str | None = None, model: str = DEFAULT_START, temperature: str | Sequence[float] = "300..600",
          workers: int | None = None, slurm: bool = False, rounds: int = 2, holdout: int | None = None,
          members: int | None = None, mix: str | dict | None = None, finetune_share: float = 0.25,
          md_steps: int = 2000, seed: int = 0, overrides: Sequence[str] = (), verbose: bool = True,
          slurm_settings: labelling.SlurmSettings | None = None) -> AdaptResult:
    """Adapt `model` (an ensemble: its disagreement chooses what to label) to the molecules of
    `smiles` (strings or files of them) and `structures` (a file) within `budget` CPU time, in
    `out`. See `foundation.recipes.adapt` for the steps; run again with the same arguments to
    resume a run that was stopped (a larger budget continues it)."""
    say = print if verbose else (lambda *_: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"smiles": list(smiles), "structures": structures, "model": str(model),
                "temperatures": list(parse_temperatures(temperature)), "budget_seconds": parse_budget(budget),
                "rounds": int(rounds), "holdout": holdout, "members": members, "mix": parse_mix(mix),
                "finetune_share": float(finetune_share), "md_steps": int(md_steps), "seed": int(seed),
                "overrides": list(overrides), "workers": workers or os.cpu_count() or 1, "slurm": bool(slurm),
                "verbose": bool(verbose)}
    _check(settings)
    run = _Run(out, settings, say, slurm_settings or labelling.SlurmSettings())
    return run.go()


def _check(s: dict) -> None:
    if s["rounds"] < 1:
        raise UserError(f"--rounds {s['rounds']}: give 1 or more")
    if s["holdout"] is not None and s["holdout"] < 2:
        raise UserError(f"--holdout {s['holdout']}: relative energies need 2 or more held-out conformers per molecule")
    if not 0.0 < s["finetune_share"] < 1.0:
        raise UserError(f"--finetune-share {s['finetune_share']}: must be in (0, 1)")
    if s["md_steps"] < 20:
        raise UserError(f"--md-steps {s['md_steps']}: give 20 or more")


class _Run:
    """One run's state between its steps (each step's result is on disk before the next)."""

    def __init__(self, out: Path, settings: dict, say: Callable[[str], None], slurm: labelling.SlurmSettings):
        self.out, self.s, self.say, self.slurm = out, settings, say, slurm
        self.ledger = Ledger(out)
        self.budget = settings["budget_seconds"]

    # ---- the steps ---------------------------------------------------------------------------
    def go(self) -> AdaptResult:
        from foundation.loading import load_pretrained

        self.start = load_pretrained(self.s["model"], device="cpu")
        self.load_seconds = self.ledger.charge("loading")
        if len(getattr(self.start, "members", None) or ()) < 2:
            raise UserError(f"--model {self.s['model']}: adapt needs an ensemble (its members' disagreement "
                            "chooses what to label); give one such as ani-1x or ani-1x-ccsdt")
        from foundation.recipes.adapt.door import read_molecules

        self.molecules = read_molecules(self.s["smiles"], self.s["structures"], self.start.elements, self.s["model"])
        self.ledger.check_config(dict(self.s))
        self.candidates = self._candidates()
        self.held = self._holdout()
        self.costs = labelling.calibrated(costs_module.CostModel.prior(list(self.s["mix"])), self.out)
        self._say_plan()
        records = self._round_records()
        for r in range(1, self.s["rounds"] + 1):
            if r <= len(records):
                continue
            records.append(self._round(r, records))
        return self._finish(records)

    def _candidates(self) -> list:
        found = sampling.read_candidates(self.out)
        if found is not None:
            self.say(f"candidates: {len(found)} frames read back from {self.out / sampling.FILE}")
            return found
        config = sampling.SamplingConfig(temperatures=tuple(self.s["temperatures"]), steps=self.s["md_steps"])
        self.say(f"sampling: {len(self.molecules)} molecule(s), Langevin MD with {self.s['model']} at "
                 f"{', '.join(f'{t:.0f}' for t in config.temperatures)} K, {config.steps * config.dt:.0f} fs each")
        found = sampling.sample(self.molecules, self.start, config, self.s["seed"], self.say)
        sampling.write_candidates(self.out, found)
        self.ledger.charge("sampling")
        return found

    def _holdout(self) -> list:
        path = self.out / "holdout.json"
        if not path.exists():
            chosen = choose.choose_holdout(self.candidates, self._holdout_size(), self.s["seed"])
            write_json(path, [c.id for c in chosen])
        ids = set(json.loads(path.read_text()))
        return [c for c in self.candidates if c.id in ids]

    def _holdout_size(self) -> int:
        """--holdout, or (auto) 3 conformers per molecule while their CCSD(T) estimate is at most
        `HOLDOUT_SHARE` of the labelling budget, else 2 (one relative energy per molecule)."""
        if self.s["holdout"] is not None:
            return self.s["holdout"]
        costs = costs_module.CostModel.prior([CC])
        per_round = sum(costs.seconds(CC, nbf) for nbf in choose.sizes(self.candidates).values())
        labelling_budget = self.budget * (1 - self.s["finetune_share"])
        size = 3 if 3 * per_round <= HOLDOUT_SHARE * labelling_budget else 2
        self.say(f"held out: {size} conformers per molecule (CCSD(T) estimate {_hours(size * per_round)} of "
                 f"{_hours(labelling_budget)} for labelling; --holdout sets it)")
        return size

    def _say_plan(self) -> None:
        sizes = choose.sizes(self.candidates)
        holdout = sum(self.costs.seconds(CC, costs_module.basis_functions(c.numbers)) for c in self.held)
        finetune = self.budget * self.s["finetune_share"]
        self.say(f"budget: {_hours(self.budget)} CPU: fine-tuning ~{_hours(finetune)} ({self.s['rounds']} round(s)), "
                 f"labelling the rest, {', '.join(f'{fid} {w:.0%}' for fid, w in self.s['mix'].items())} "
                 f"(held-out set first: {len(self.held)} CCSD(T) conformers, estimated {_hours(holdout)})")
        for line in self.costs.describe(sizes):
            self.say(f"  cost {line}")
        if holdout > HOLDOUT_MAX_SHARE * (self.budget - finetune):
            raise UserError(f"--budget {_hours(self.budget)}: the held-out CCSD(T) calculations alone are estimated "
                            f"at {_hours(holdout)}, more than half the labelling budget; give a larger budget, "
                            "fewer or smaller molecules, or --holdout 2")

    def _round(self, r: int, done: list[dict]) -> dict:
        folder = self.out / "rounds" / f"round-{r}"
        scorer = self.start if r == 1 else _load(done[-1]["model"])
        limit = self._labelling_limit(r)
        tasks = self._tasks(r, folder, scorer, limit)
        self.ledger.charge("choosing")
        admission = labelling.Admission(self.out, folder / "labels", self.costs, limit, self._not_labelling,
                                        frozenset(c.id for c in self.held) if r == 1 else frozenset())
        self.ledger.labelling = True  # the workers' CPU: in the calculations' records
        try:
            if self.s["slurm"]:
                counts = labelling.label_on_slurm(folder / "labels", tasks, admission, self.slurm, self.say)
            else:
                counts = labelling.label_locally(folder / "labels", tasks, self.s["workers"], admission,
                                                 self.s["verbose"])
            self.ledger.charge("labelling (this process)")
        finally:
            self.ledger.labelling = False
        self.costs = labelling.calibrated(self.costs, self.out)
        self.say(f"round {r}: labelled {counts['ok']} ok, {counts['failed'] + counts['unconverged']} failed, "
                 f"{counts.get('deferred', 0)} left for lack of budget; spent {_hours(self.spent())} of "
                 f"{_hours(self.budget)}")
        for line in self.costs.describe(choose.sizes(self.candidates)):
            self.say(f"  cost {line}")
        if r > 1 and not any(s["split"] == "train" for s, _ in labelling.records(folder / "labels")):
            return self._unchanged(r, folder, done[-1])  # nothing new to learn from: no second fine-tune
        return self._tune(r, folder)

    def _tasks(self, r: int, folder: Path, scorer, limit: float) -> list:
        """The round's tasks (held-out set first in round 1), chosen once and read back after."""
        path = folder / "picks.json"
        by_id = {c.id: c for c in self.candidates}
        if not path.exists():
            scores = choose.score(scorer, self.candidates)
            labelled = [by_id[s["id"]] for s, _ in labelling.records(self.out) if s["id"] in by_id]
            room = max(limit - self.spent(), 0.0) * OVERPLAN
            if r == 1:
                room -= sum(self.costs.seconds(CC, costs_module.basis_functions(c.numbers)) for c in self.held)
            picks = choose.allocate(self.candidates, choose.rank(self.candidates, scores), self.s["mix"],
                                    max(room, 0.0), self.costs, holdout=self.held, labelled=labelled)
            write_json(path, [{"id": t.candidate.id, "fidelity": t.fidelity, "estimate": t.estimate} for t in picks])
            counts: dict[str, int] = {}
            for t in picks:
                counts[t.fidelity] = counts.get(t.fidelity, 0) + 1
            self.say(f"round {r}: estimate: {', '.join(f'{n} {fid}' for fid, n in counts.items()) or 'nothing'} "
                     f"chosen by disagreement for ~{_hours(sum(t.estimate for t in picks))} "
                     f"(the round may spend up to {_hours(limit)} in all; admission stops at it)")
        picks = [choose.Task(by_id[p["id"]], p["fidelity"], "train", p["estimate"]) for p in json.loads(path.read_text())]
        held = [choose.Task(c, CC, "holdout", 0.0) for c in self.held] if r == 1 else []
        return held + picks

    def _tune(self, r: int, folder: Path) -> dict:
        train, held = tuning.train_samples(self.out)
        if sum(CC in s.energies for s in train) < 5:
            raise UserError(f"round {r}: the budget bought {sum(CC in s.energies for s in train)} CCSD(T) training "
                            "labels; fine-tuning needs 5 or more: give a larger --budget")
        count = self.s["members"] or len(self.start.members)
        allowed = max(self.budget * r / self.s["rounds"] - self.spent(), 0.0)  # what the round's labelling left
        step = tuning.step_seconds(self.start, train)
        fixed = self._fixed_seconds()
        steps = tuning.plan_steps(allowed, count, step, fixed)
        loop_seconds = tuning.member_seconds(allowed, count, fixed)
        self.say(f"round {r}: fine-tuning {count} member(s) of {self.s['model']} on {len(train)} structures, "
                 f"up to {steps} steps or {loop_seconds:.0f} CPU s each (~{_hours(allowed)} allowed; a step "
                 f"measured {step * 1000:.0f} ms)")
        self.ledger.charge("choosing")
        shutil.rmtree(folder / "finetune", ignore_errors=True)  # a fine-tune killed half-way starts again
        result = tuning.finetune_round(self.s["model"], train, folder / "model.safetensors", folder / "finetune",
                                       self.s["members"], steps, self.s["seed"], self.s["overrides"], loop_seconds,
                                       self.start.heads)
        seconds = self.ledger.charge("fine-tuning")
        member_steps = [m["steps"] for m in result.members] or [result.steps]
        tuned = _load(result.model_path)
        record = {"round": r, "model": str(result.model_path), "cpu_seconds": self.spent(),
                  "heldout": tuning.heldout_errors(tuned, held), "start_heldout": tuning.heldout_errors(self.start, held),
                  "train": _count_levels(train), "steps": result.steps, "kept_start": result.kept_start,
                  "reason": result.reason, "finetune_seconds": seconds, "member_steps": member_steps,
                  "step_seconds": step}
        self.ledger.charge("scoring")
        record["cpu_seconds"] = self.spent()
        write_json(folder / "round.json", record)
        self.say(f"round {r}: held-out relative-energy RMSE vs CCSD(T) {record['start_heldout']['all']:.2f} -> "
                 f"{record['heldout']['all']:.2f} kcal/mol after {_hours(record['cpu_seconds'])} CPU")
        return record

    def _unchanged(self, r: int, folder: Path, last: dict) -> dict:
        record = {**last, "round": r, "cpu_seconds": self.spent(), "steps": 0, "kept_start": False,
                  "reason": None, "unchanged": True}
        write_json(folder / "round.json", record)
        self.say(f"round {r}: no new labels (the candidates or the budget ran out), so round {r - 1}'s model stays")
        return record

    def _finish(self, rounds: list[dict]) -> AdaptResult:
        from foundation.recipes.adapt import report

        model_path = self.out / "model.safetensors"
        with replacing(model_path) as tmp:
            shutil.copyfile(rounds[-1]["model"], tmp)
        final = _load(model_path)
        spreads = {"start": choose.mean_spread(self.candidates, choose.score(self.start, self.candidates)),
                   "after": choose.mean_spread(self.candidates, choose.score(final, self.candidates))}
        self.ledger.charge("scoring")
        phases, calculations = self.ledger.phases(), labelling.labelling_seconds(self.out)
        spent = sum(phases.values()) + sum(calculations.values())  # everything charged: the report's sum
        path = report.write(self.out, self.s, self.molecules, rounds, spreads, phases, calculations, spent)
        self.say(f"model: {model_path} (default head {CC}); report: {path}")
        return AdaptResult(model_path, path, self.budget, spent, rounds[-1]["start_heldout"]["all"],
                           rounds[-1]["heldout"]["all"], rounds)

    # ---- accounting ----------------------------------------------------------------------
    def _labelling_limit(self, r: int) -> float:
        finetunes = [d.get("finetune_seconds") or 0.0 for d in self._round_records()[: r - 1]]
        return labelling_limit(self.budget, self.s["rounds"], self.s["finetune_share"], r, finetunes)

    def _fixed_seconds(self) -> float:
        """CPU seconds a member's fine-tune costs besides its steps (building the trainer, fitting
        references, validations, writing): measured on the last round, else a prior."""
        measured = [d for d in self._round_records() if d.get("finetune_seconds") and d.get("member_steps")]
        if not measured:
            return FIXED_PER_MEMBER + self.load_seconds
        d = measured[-1]
        steps = sum(d["member_steps"])
        return max((d["finetune_seconds"] - steps * d["step_seconds"] * tuning.OVERHEAD) / len(d["member_steps"]),
                   self.load_seconds)

    def _not_labelling(self) -> float:
        return self.ledger.seconds()

    def spent(self) -> float:
        return self.ledger.seconds() + sum(labelling.labelling_seconds(self.out).values())

    def _round_records(self) -> list[dict]:
        """The finished rounds' records (round.json), in order."""
        return [json.loads(p.read_text()) for p in self._round_files()]

    def _round_files(self) -> list[Path]:
        found = []
        for r in range(1, self.s["rounds"] + 1):
            path = self.out / "rounds" / f"round-{r}" / "round.json"
            if not path.exists():
                break
            found.append(path)
        return found


def labelling_limit(budget: float, rounds: int, finetune_share: float, r: int, finetunes: Sequence[float] = ()) -> float:
    """What may be spent in all by the end of round r's labelling: the round's even share of the
    budget up to its end, less what is kept for its own fine-tune: the fine-tuning share, or, once
    earlier rounds have measured their fine-tunes (`finetunes`, CPU seconds), `FINETUNE_MARGIN`
    times the dearest if that is less (a 3 h run's fine-tunes cost 1-2 % of it, so the share left
    0.7 CPU-hours unspent). What an earlier fine-tune spent beyond it is in what has been spent, so
    the later labelling shrinks."""
    kept = budget * finetune_share / rounds
    if any(finetunes):
        kept = min(kept, FINETUNE_MARGIN * max(finetunes))
    return budget * r / rounds - kept


def _load(path):
    from foundation.loading import load_pretrained

    return load_pretrained(path, device="cpu")


def _count_levels(samples: Sequence) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in samples:
        for fid in s.energies:
            counts[fid] = counts.get(fid, 0) + 1
    return counts


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
