"""Freezing parameters by name, for transfer learning (ANI-1x → ANI-1ccx retrains some layers and
keeps the others). A pattern is an fnmatch glob on the parameter name (`*.layers.0.*`), or a
regular expression when it starts with `re:` (`re:.*\\.(0|2)\\.weight$`). A pattern that matches
nothing is an error: a silent typo would train what was meant to stay fixed. `auto` stands for the
model's own transfer default (`PotentialModel.transfer_freeze`: ANI's second layers, PaiNN's first
interaction; for MACE nothing, which measured best), so one recipe fine-tunes any architecture. A
model whose default depends on the heads trained (`RoutedModel`: the parts answering other heads
stay whole) has `transfer_freeze_for(heads)`, and the trainer passes the heads it trains."""

from __future__ import annotations

import fnmatch
import re

from torch import nn

from foundation.errors import UserError


def matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


AUTO = "auto"


def resolve(model: nn.Module, patterns: list[str], heads: list[str] | None = None) -> list[str]:
    """`patterns` with `auto` replaced by the model's transfer default for training `heads`
    (None: the model's `transfer_freeze`)."""
    resolved = []
    for pattern in patterns:
        if pattern != AUTO:
            resolved.append(pattern)
            continue
        default = _default(model, heads)
        if default is None:
            name = getattr(getattr(model, "config", None), "name", type(model).__name__)
            raise UserError(f"trainer.freeze=[{AUTO}]: model {name!r} has no default of what to freeze; "
                            "name the parameters (trainer.freeze='[pattern, ...]') or freeze none ([])")
        resolved += list(default)
    return list(dict.fromkeys(resolved))


def _default(model: nn.Module, heads: list[str] | None) -> tuple[str, ...] | None:
    by_heads = getattr(model, "transfer_freeze_for", None)
    if heads is not None and by_heads is not None:
        return by_heads(heads)
    return getattr(model, "transfer_freeze", None)


def freeze(model: nn.Module, patterns: list[str], heads: list[str] | None = None) -> list[str]:
    """Set `requires_grad=False` on every parameter matched by a pattern (`auto`: the model's
    transfer default for training `heads`); return their names."""
    patterns = resolve(model, patterns, heads)
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            except re.error as e:
                raise UserError(f"trainer.freeze: bad regular expression {pattern!r}: {e}") from None
        if not any(matches(name, pattern) for name in names):
            shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
            raise UserError(f"trainer.freeze: pattern {pattern!r} matches no parameter "
                            f"(names look like: {shown})")
    frozen = []
    for name, p in model.named_parameters():
        if any(matches(name, pattern) for pattern in patterns):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen
