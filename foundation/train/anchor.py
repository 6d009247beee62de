"""L2-SP: a pull toward the starting weights (Li, Grandvalet and Davoine, ICML 2018,
"Explicit inductive bias for transfer learning with convolutional networks").

A fine-tune on a small CC set moves every weight it can to fit the CC set's molecules and forgets
what the start knew about others (the shipped transfer lost to ANI-1x on larger molecules). The
penalty `strength/2 * sum((w - w_start)^2)` over the trainable weights keeps the solution near the
start in every direction the CC data do not pin down, unlike freezing, which forbids some
directions entirely and leaves the rest free.
"""

from __future__ import annotations

import torch


class Anchor:
    """The trainable weights at the start of a run and the penalty of moving away from them."""

    def __init__(self, model: torch.nn.Module, strength: float, start: dict[str, torch.Tensor] | None = None):
        self.strength = float(strength)
        own = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        # A resumed run anchors to the first start, which its checkpoint kept, not to where it resumed.
        self.start = own if start is None else {n: start[n].to(own[n]) for n in own}

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        terms = [((p - self.start[n]) ** 2).sum() for n, p in model.named_parameters() if n in self.start]
        return 0.5 * self.strength * torch.stack(terms).sum()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.start
