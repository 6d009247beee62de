"""Construction of a run's parts, one small `build_*` per part, so the trainer only wires them.

Three ways to get the model (torchtitan's split between resuming and initialising):
- fresh: the model config, with `elements` and `heads` filled from the data;
- `trainer.init_from`: weights of another model (a new run: optimiser, schedule, step start
  over); heads the data has and that model lacks are added, copied from `new_head_from`;
- resume: rebuilt from the config stored in the run's checkpoint (done by the trainer)."""

from __future__ import annotations

import dataclasses
import torch
from torch import nn

from foundation.errors import UserError
from foundation.train.config import RunConfig, TrainerConfig
from foundation.train.schedule import Schedule


def build_data(config: RunConfig):
    data = config.data.build()
    if not data.fidelities:
        raise UserError("data: no labelled fidelity found in the training data")
    return data


def build_model(config: RunConfig, data) -> tuple[nn.Module, list[str]]:
    """Return (model, heads whose reference energies must be fitted)."""
    if config.trainer.init_from:
        return _model_from_init(config.trainer, data)
    model = _fill_from_data(config.model, data)
    absent = [f for f in data.fidelities if f not in model.heads]
    if absent:
        raise UserError(f"model.heads={list(model.heads)} lacks the data's fidelities {', '.join(absent)}; "
                        "set model.heads=null to take them from the data")
    return model, list(data.fidelities)


def _fill_from_data(model_config, data) -> nn.Module:
    """Build the model, taking `elements` and `heads` from the data where the config leaves them
    unset (None or absent), and what it leaves to the data (`auto`) from the training structures."""
    from foundation.models.registry import model_config as config_from_dict
    from foundation.train.references import MAX_STRUCTURES, training_samples

    fill = {"elements": list(data.elements), "heads": list(data.fidelities)}
    if isinstance(model_config, dict):
        given = {k: v for k, v in model_config.items() if v is not None or k not in fill}
        config = config_from_dict({**fill, **given})
    else:
        unset = {k: v for k, v in fill.items() if getattr(model_config, k, None) is None}
        config = dataclasses.replace(model_config, **unset) if unset else model_config
    _check_elements(config, data, "model")

    def samples():  # every rank reads the same structures, so every rank computes the same values
        found = training_samples(data, None, MAX_STRUCTURES)
        if found is None:
            raise UserError(f"model={config.name}: settings set to auto are computed from the training "
                            "structures, which this data module does not offer; give them as numbers")
        return found

    return config.with_data_statistics(samples).build()


def _model_from_init(trainer: TrainerConfig, data) -> tuple[nn.Module, list[str]]:
    from foundation.loading import load_pretrained  # a path, a run, or a registry name / URL

    model = one_member(load_pretrained(trainer.init_from, device="cpu"), trainer.init_member,
                       f"trainer.init_from={trainer.init_from}")
    _check_elements(model, data, f"trainer.init_from={trainer.init_from}")
    source = trainer.new_head_from or model.heads[0]
    if source not in model.heads:
        raise UserError(f"trainer.new_head_from={source!r}: {trainer.init_from} has heads "
                        f"{', '.join(model.heads)}")
    to_fit = []
    for fid in data.fidelities:
        if fid not in model.heads:
            model.add_head(fid, copy_from=source)
            to_fit.append(fid)  # the copied head carries the other level's references
        elif trainer.refit_reference_energies or not _has_references(model, fid):
            to_fit.append(fid)
    return model, to_fit


def one_member(model, k: int | None, where: str):
    """The network one run trains: `model`, or member `k` of an ensemble (`where` names the model
    in errors). An ensemble is never trained as one network: its mean would be fitted and its
    members would stop disagreeing, so its spread would no longer mean anything. Each member is
    its own run, from its own weights, with its own seed."""
    members = getattr(model, "members", None)
    if members is None:
        if k is not None:
            raise UserError(f"trainer.init_member={k}: {where} is not an ensemble")
        return model
    if k is None:
        raise UserError(f"{where} is an ensemble of {len(members)} members: train each member as its own run "
                        "(`foundation finetune`, or `python -m foundation.recipes.ensemble --from ...`), or start from "
                        "one with trainer.init_member=K")
    if not 0 <= k < len(members):
        raise UserError(f"trainer.init_member={k}: {where} has members 0..{len(members) - 1}")
    member = members[k]
    member.default_head = getattr(model, "default_head", None) or getattr(member, "default_head", None)
    return member


def _check_elements(model, data, what: str) -> None:
    missing = sorted(set(data.elements) - set(int(z) for z in model.elements))
    if missing:
        from foundation.data.elements import symbol

        raise UserError(f"{what}: the data contain elements {', '.join(symbol(z) for z in missing)} "
                        f"that the model does not cover ({', '.join(symbol(z) for z in model.elements)})")


def _has_references(model, head: str) -> bool:
    refs = model.reference_energies_dict().get(head, {})
    return any(float(v) != 0.0 for v in refs.values())


def build_optimizer(model: nn.Module, trainer: TrainerConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; weight decay on matrices only (decaying biases and
    scales just pulls them to zero without regularising anything)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise UserError("trainer.freeze: every parameter is frozen; nothing to train")
    groups = [{"params": decay, "weight_decay": trainer.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=trainer.lr)


def build_schedule(optimizer: torch.optim.Optimizer, trainer: TrainerConfig) -> Schedule:
    return Schedule(optimizer, lr=trainer.lr, max_steps=trainer.max_steps,
                    warmup_steps=trainer.warmup_steps, kind=trainer.schedule, min_lr=trainer.min_lr,
                    plateau_factor=trainer.plateau_factor, plateau_patience=trainer.plateau_patience)
