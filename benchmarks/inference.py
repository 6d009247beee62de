"""Batched inference, energies + forces, ours vs TorchANI 2.9 (`python -m benchmarks.inference`,
~1 minute).

Both sides in eval mode with identical float32 ANI-1x weights, on the same batches of 128 small
organic molecules (10-27 atoms, H/C/N/O), forces by autograd without a graph for training:
  ours = `model(batch)` on a flat `AtomsBatch` (neighbour list by vesin inside the call);
  peer = TorchANI's `ANI` on padded tensors + `torch.autograd.grad`, all-pairs neighbours.
Also our PaiNN on the same batches against the same peer (`painn_inference_vs_torchani`).
"""

from __future__ import annotations


import torch

from benchmarks import common
from foundation.errors import entry_point

BATCH, N_BATCHES, REPEATS = common.sized((128, 4, 7), (4, 1, 1))


def ours_infer(model):
    def infer(batch):
        out = model(batch)
        return out["energy"], out["forces"]

    return infer


def peer_infer(model):
    def infer(item):
        numbers, coords = item
        coords = coords.detach().requires_grad_(True)
        energy = model((numbers, coords)).energies
        (grad,) = torch.autograd.grad(energy.sum(), coords)
        return energy, -grad

    return infer


def run(batch_size: int = BATCH, n_batches: int = N_BATCHES, repeats: int = REPEATS) -> list[dict]:
    torch.set_num_threads(1)
    chosen = common.batches(common.molecules(conformers=common.sized(4, 1)), batch_size, n_batches, seed=1)
    # Weights frozen on both sides, as TorchANI's ANI1x() builder and loaded checkpoints have them.
    peer = common.torchani_ani1x().eval().requires_grad_(False)
    ours = common.ours_from(peer).eval().requires_grad_(False)
    painn = common.painn().eval().requires_grad_(False)
    agreement = common.check_agreement(peer, chosen[0])
    flat = [common.flat(b) for b in chosen]
    padded = [common.padded(b) for b in chosen]

    def runner(fn, items):
        def go():
            for item in items:
                fn(item)
            return batch_size * len(items)
        return go

    runs = {"ours": runner(ours_infer(ours), flat), "peer": runner(peer_infer(peer), padded),
            "painn": runner(ours_infer(painn), flat)}
    for go in runs.values():
        go()
    rates = common.interleaved(runs, repeats)
    inputs = {"molecules_per_batch": batch_size, "batches_per_repeat": n_batches, **common.describe(chosen),
              "dtype": "float32", "outputs": "energies and forces (autograd, no graph kept)",
              "peer": "torchani.arch.ANI (ANI1x() architecture, fresh weights), padded batches, all-pairs neighbours",
              "ours": "foundation ANI with the peer's weights, model(batch) on a flat batch"}
    shares = common.profile_shares(runs["ours"])
    ani = common.figure("inference_vs_torchani", "molecules/s", rates["ours"], rates["peer"], goal=2.0,
                        inputs=inputs, agreement=agreement, profile_ours=shares)
    common.explain(ani, f"the element networks' matrix products ({shares['matmul (element networks / layers)']}% "
                        "of our time) cost the same on both sides")
    painn_fig = common.painn_figure("painn_inference_vs_torchani", "molecules/s", rates, inputs,
                                    f"foundation PaiNN {common.painn_size(painn)}")
    return [ani, painn_fig]


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
