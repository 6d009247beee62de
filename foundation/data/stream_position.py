"""Re-splitting a stream position over another number of readers: a job requeued on another
world size (or with other DataLoader workers) continues mid-epoch without repeating or skipping
a sample.

A *logical reader* is one reader of the layout that began an epoch (a rank and worker of those
`world_size × workers`; a rank of the in-memory stream). Its share of the epoch is a fixed
sequence, so what it has delivered is a set of indices into that sequence: rank-independent.
A `Consumed` keeps that set small: every index below `prefix`, plus the sorted `extra` ones above
it, or `all`. Readers progress at nearly the same pace, so the extras are a few batches at most.

When the layout changes mid-epoch, the new readers share out what is left (a *plan* for that
epoch, the same on every new reader): with R new readers and L logical ones, R ≤ L, new reader j
takes the rest of every logical reader i with i % R == j, one after another; R > L, the new
readers j ≡ i (mod L) deal logical reader i's rest among themselves, item by item. Each epoch at
least one old reader had begun gets a plan; the epochs after it are split by the new layout as
usual. A change while a plan is running makes a new plan of the same logical readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

ALL = {"prefix": 0, "extra": [], "all": True}
NONE = {"prefix": 0, "extra": [], "all": False}


def consumed(prefix: int = 0, extra: Iterable[int] = ()) -> dict:
    """Indices below `prefix` and those in `extra`, normalised (the prefix absorbs what it can)."""
    extra = {int(i) for i in extra if i >= prefix}
    while prefix in extra:
        extra.discard(prefix)
        prefix += 1
    return {"prefix": prefix, "extra": sorted(extra), "all": False}


def left(c: dict, items: Iterable) -> Iterator:
    """The items of a logical reader's sequence not yet consumed, in order."""
    if c["all"]:
        return
    extra = frozenset(c["extra"])
    for n, item in enumerate(items):
        if n >= c["prefix"] and n not in extra:
            yield item


def parts(j: int, logical: int, physical: int) -> list[tuple[int, int, int]]:
    """(logical reader i, sub a, of cnt) that new reader `j` of `physical` takes in a plan over
    `logical` readers: item k of logical reader i's rest is its sub `k % cnt`'s."""
    if physical <= logical:
        return [(i, 0, 1) for i in range(j, logical, physical)]
    i = j % logical
    return [(i, j // logical, len(range(i, physical, logical)))]


def advance(c: dict, cnt: int, counts: Sequence[int | None]) -> dict:
    """`c` after sub-readers 0..cnt-1 of its rest took `counts[a]` items each (None: all of its
    share, known only for cnt == 1, a reader that finished its epoch)."""
    if c["all"] or all(n is None for n in counts):
        return dict(ALL)
    if any(n is None for n in counts):
        raise ValueError("a finished sub-reader of a dealt share must record its count")
    whole = cnt * min(counts)  # the rest's first `whole` items were taken by every sub-reader
    last = max((a + cnt * (n - 1) for a, n in enumerate(counts) if n), default=-1)
    prefix, taken = c["prefix"], set(c["extra"])
    rest = left(c, _count())
    for k in range(last + 1):
        index = next(rest)
        if k < whole:
            prefix = index + 1
        elif k // cnt < counts[k % cnt]:
            taken.add(index)
    return consumed(prefix, taken)


def _count() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 1


def of_positions(positions: Iterable[int]) -> dict:
    """A `Consumed` from an explicit set of indices."""
    return consumed(0, positions)


# ---- the shard stream's reader positions (stream.py) ------------------------------------------
def reader_positions(state: dict) -> tuple[int, int, list[dict]]:
    """(world_size, readers per rank, position of each old reader by index) of a saved
    `ShardStream` state; a reader that never delivered a batch is at the start."""
    world, per_rank = int(state["world_size"]), max(1, int(state["num_workers"]))
    positions = [{} for _ in range(world * per_rank)]
    for rank, saved in state["ranks"].items():
        for worker, position in saved["readers"].items():
            positions[int(rank) * per_rank + int(worker)] = position
    return world, per_rank, positions


def resplit_readers(state: dict, keys: Sequence[str], world: int, per_rank: int) -> tuple[list[dict], str]:
    """The positions of the `world × per_rank` new readers (by index) continuing a saved
    `ShardStream` state of another layout, and one line saying what was re-split."""
    old_world, old_per_rank, old = reader_positions(state)
    new = [{"drawn": 0, "failed": {}, "skipped": 0, "streams": {}, "plans": {}, "parts": {}, "done": {}}
           for _ in range(world * per_rank)]
    for i, position in enumerate(old):  # skip counts move with the readers, so totals carry on
        mine = new[i % len(new)]
        mine["skipped"] += int(position.get("skipped", 0))
        for url, n in position.get("failed", {}).items():
            mine["failed"][url] = mine["failed"].get(url, 0) + n
    spans = []
    for key in keys:
        plans, first = key_plans(old, key, old_world, old_per_rank)
        for j, mine in enumerate(new):
            mine["streams"][key] = [first, 0]
            mine["plans"][key] = plans
            mine["parts"][key] = [0] * len(plan_parts(plans[str(first)], j, len(new)))
        span = f"epoch {first}" if len(plans) <= 1 else f"epochs {first}-{first + len(plans) - 1}"
        spans.append(f"{span} of {key}" if key else span)
    return new, describe(f"{old_world} rank(s) × {old_per_rank} reader(s)", f"{world} × {per_rank}", spans)


def describe(old: str, new: str, spans: Sequence[str]) -> str:
    """The one line that says a position was re-split."""
    return (f"data position saved by {old} re-split over {new}: the samples not yet delivered in "
            f"{', '.join(spans)} are shared out, none repeated or skipped")


def key_plans(old: list[dict], key: str, world: int, per_rank: int) -> tuple[dict, int]:
    """({epoch: plan} for every epoch an old reader had begun on `key` but not every reader
    had finished, the first such epoch)."""
    at = [_key_position(p, key) for p in old]
    first, last = min(e for e, _, _ in at), max(e for e, _, _ in at)
    plans = {}
    for epoch in range(first, last + 1):
        plan = _old_plan(old, key, epoch) or {"layout": [world, per_rank], "consumed": [dict(NONE)] * len(old)}
        logical = plan["layout"][0] * plan["layout"][1]
        counts: list[list] = [[0] * len(range(i, len(old), logical)) if len(old) > logical else [0]
                              for i in range(logical)]
        for j, (e, taken, parts_taken) in enumerate(at):
            done = _done(old[j], key, epoch)
            for q, (i, a, cnt) in enumerate(parts(j, logical, len(old))):
                counts[i][a] = (None if done is None else done[q]) if e > epoch else \
                    (parts_taken[q] if epoch == e and parts_taken else (taken if epoch == e else 0))
        plans[str(epoch)] = {"layout": list(plan["layout"]),
                             "consumed": [advance(c, len(n), n) for c, n in zip(plan["consumed"], counts)]}
    return plans, first


def plan_parts(plan: dict, j: int, physical: int) -> list[tuple[int, int, int]]:
    return parts(j, plan["layout"][0] * plan["layout"][1], physical)


def _key_position(position: dict, key: str) -> tuple[int, int, list[int]]:
    epoch, taken = position.get("streams", {}).get(key, (0, 0))
    return int(epoch), int(taken), list(position.get("parts", {}).get(key, []))


def _old_plan(old: list[dict], key: str, epoch: int) -> dict | None:
    for position in old:
        plan = position.get("plans", {}).get(key, {}).get(str(epoch))
        if plan is not None:
            return plan
    return None


def _done(position: dict, key: str, epoch: int) -> list[int] | None:
    """Per-part counts of a finished planned epoch; None for an epoch split as usual (a reader
    that finished it took all of its share)."""
    return position.get("done", {}).get(key, {}).get(str(epoch))
