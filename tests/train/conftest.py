"""The trainer tests' data hook. The tiny runs themselves (`tiny_run`, `xyz_path`, TINY_MODEL, ...)
are in tests/conftest.py, shared with the fault tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from foundation.data.sources.in_memory import FileDataConfig


@dataclasses.dataclass
class HookedData:
    """The real file data, calling `hook(n, batch)` on the n-th training batch drawn (1-based)
    before the trainer sees it: how the tests make a label go bad or a signal arrive mid-run."""

    inner: FileDataConfig
    hook: Callable[[int, Any], None]

    def build(self):
        data = self.inner.build()
        make_stream, hook = data.train_stream, self.hook
        data.train_stream = lambda seed, rank=0, world_size=1: _HookedStream(
            make_stream(seed, rank, world_size), hook)
        return data


class _HookedStream:
    def __init__(self, stream, hook):
        self.stream, self.hook, self.drawn = stream, hook, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.stream)
        self.drawn += 1
        self.hook(self.drawn, batch)
        return batch

    def state_dict(self):
        return self.stream.state_dict()

    def load_state_dict(self, state):
        self.stream.load_state_dict(state)

    def __getattr__(self, name):  # positions, resplit, skipped counts: the stream's own
        if name == "stream":
            raise AttributeError(name)
        return getattr(self.stream, name)
