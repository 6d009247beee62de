"""Which electronic states a model can represent: the total charges and spin multiplicities it was
trained on, and the one-line refusal of a structure outside them.

A model's energy is a function of the atoms alone: it has no input for the charge or the spin, so
a model trained on neutral singlets predicts a cation, an anion or a radical as if it were one
(silently wrong by electron-volts). A model therefore carries `charges` and `multiplicities` (the
sets it was trained on; its file header records them, `foundation.hub.format`), and `evaluate`,
`finetune`, `md` and the ASE calculator refuse a structure whose (charge, multiplicity) is not in
them. A model file without the fields is a neutral-singlet model: every model shipped so far
(ANI-1x, ANI-1ccx, ANI-2x and ours) was trained on neutral closed-shell molecules only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from foundation.data.electrons import describe
from foundation.errors import UserError

NEUTRAL_CHARGES = (0,)
SINGLET = (1,)


class UnsupportedStateError(UserError, ValueError):
    """A structure of a charge or spin multiplicity the model was not trained on. A `ValueError`
    too, so that ASE optimisers and MD stop cleanly on it."""


def model_states(model) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(charges, multiplicities) the model was trained on; neutral singlets when it does not say."""
    return (tuple(getattr(model, "charges", None) or NEUTRAL_CHARGES),
            tuple(getattr(model, "multiplicities", None) or SINGLET))


def set_states(model, charges: Iterable[int], multiplicities: Iterable[int]) -> None:
    """Record on `model` the states it was trained on (sorted, unique)."""
    model.charges = tuple(sorted({int(c) for c in charges}))
    model.multiplicities = tuple(sorted({int(m) for m in multiplicities}))


def states_from_header(header: Mapping) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(charges, multiplicities) of a model file's header; a header without them (every file
    written before they were recorded) describes a neutral-singlet model."""
    return (tuple(int(c) for c in header.get("charges") or NEUTRAL_CHARGES),
            tuple(int(m) for m in header.get("multiplicities") or SINGLET))


def check_state(model, charge: int, multiplicity: int, where: str, model_name: str = "the model") -> None:
    """`UnsupportedStateError` (one line, naming `where` and what the model knows) unless the
    model was trained on this charge and this multiplicity."""
    charges, multiplicities = model_states(model)
    if int(charge) in charges and int(multiplicity) in multiplicities:
        return
    knows = ("neutral singlets only" if (charges, multiplicities) == (NEUTRAL_CHARGES, SINGLET) else
             f"charges {', '.join(f'{c:+d}' for c in charges)} and multiplicities "
             f"{', '.join(map(str, multiplicities))}")
    raise UnsupportedStateError(
        f"{where}: {describe(int(charge), int(multiplicity))}, but {model_name} was trained on {knows} and "
        "cannot represent it (its energy has no charge or spin input); use a model trained on such structures")


def check_samples(model, samples: Sequence, model_name: str = "the model") -> None:
    """`check_state` for every sample (its `charge`, `multiplicity` and `source`)."""
    for s in samples:
        check_state(model, s.charge, s.multiplicity, s.source or "structure", model_name)
