"""L2-SP: a pull toward the starting weights (Li, Grandvalet and Davoine, ICML 2018,
"Explicit inductive bias for transfer learning with convolutional networks").

A fine-tune on a small CC set moves every weight it can to fit the CC set's molecules and forgets
what the start knew about others (the shipped transfer lost to ANI-1x on larger molecules). The
penalty `strength/2 * sum((w - w_start)^2)` over the trainable weights keeps the solution near the
start in every direction the CC data do not pin down, unlike freezing, which forbids some
directions entirely and leaves the rest free.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from foundation.errors import UserError
from foundation.train.freeze import matches


class Anchor:
    """The trainable weights at the start of a run and the penalty of moving away from them.

    `by_name` gives some weights a strength of their own: {pattern: strength}, the patterns those of
    `trainer.freeze` (fnmatch globs, or `re:` regular expressions), the first that matches a name
    deciding; the rest take `strength`. A layer or an element's network can then be held harder or
    looser than the others (a strength of 0 lets it move freely). A pattern that matches no
    trainable weight is an error: a typo would silently anchor everything alike."""

    def __init__(self, model: torch.nn.Module, strength: float, start: dict[str, torch.Tensor] | None = None,
                 by_name: Mapping[str, float] | None = None):
        by_name = dict(by_name or {})
        own = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        unused = [pattern for pattern in by_name if not any(matches(n, pattern) for n in own)]
        if unused:
            raise UserError(f"trainer.l2sp_by_name: {unused[0]!r} matches no trainable parameter "
                            f"(names look like {next(iter(own), '?')!r})")
        self.strengths = {n: float(next((v for k, v in by_name.items() if matches(n, k)), strength)) for n in own}
        # A resumed run anchors to the first start, which its checkpoint kept, not to where it resumed.
        self.start = own if start is None else {n: start[n].to(own[n]) for n in own}

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        terms = [self.strengths[n] * ((p - self.start[n]) ** 2).sum()
                 for n, p in model.named_parameters() if self.strengths.get(n)]
        return 0.5 * torch.stack(terms).sum() if terms else next(model.parameters()).new_zeros(())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.start
