"""Training step, ours vs TorchANI 2.9 (`python -m benchmarks.train_step`, ~1.5 minutes).

Both sides: the ANI-1x architecture (AEV like_1x, element networks 160/144/128-...-96, CELU 0.1)
in float32 with identical weights (TorchANI's fresh ones copied into ours); the same batches of
64 small organic molecules (10-27 atoms, H/C/N/O); the same loss (per-atom energy MSE + force
MSE, forces by autograd with create_graph) and optimiser (Adam, lr 1e-4); a step is forward +
forces + loss + backward + optimiser step, as each library's training loop does it
(`loss.backward()`, the positions a leaf that requires grad).
  ours = `foundation.models.prediction.predict` + `foundation.train.loss.energy_force_loss` (what
         `foundation train` runs) on flat `AtomsBatch`es;
  peer = TorchANI's `ANI` on padded (molecules, atoms) tensors, its all-pairs neighbour list.
Also our PaiNN (foundation/models/painn.py, default size) on the same batches, against the same
peer: `painn_train_step_vs_torchani`. Before timing, energies, forces and loss gradients are
checked to agree with TorchANI's (see `common.check_agreement`).
"""

from __future__ import annotations


import torch

from benchmarks import common
from foundation.errors import entry_point

BATCH, N_BATCHES, REPEATS = common.sized((64, 5, 5), (4, 1, 1))
LR = 1e-4
PAINN_BATCHES = 2  # PaiNN is ~5x slower than both ANIs: fewer batches keep the run short
HEAD = "wb97x_631gs"


def ours_step(model, optimiser):
    from foundation.models import predict
    from foundation.train.loss import LossConfig, energy_force_loss

    config = LossConfig()

    def step(batch):
        pred = predict(model, batch, [HEAD], [HEAD], create_graph=True)
        loss, _ = energy_force_loss(pred, batch, config)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss

    return step


def peer_step(model, optimiser):
    """TorchANI's training recipe (its nnp_training_force example), our loss form in Hartree."""

    def step(item):
        numbers, coords, energy, forces = item
        coords = coords.detach().requires_grad_(True)
        real = numbers >= 0
        predicted = model((numbers, coords)).energies
        (grad,) = torch.autograd.grad(predicted.sum(), coords, create_graph=True)
        e_loss = (((predicted - energy) / real.sum(1)) ** 2).mean()
        f_loss = ((-grad - forces)[real] ** 2).mean()
        loss = e_loss + f_loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss

    return step


def run(batch_size: int = BATCH, n_batches: int = N_BATCHES, repeats: int = REPEATS) -> list[dict]:
    torch.set_num_threads(1)
    samples = common.molecules(conformers=common.sized(4, 1))
    chosen = common.batches(samples, batch_size, n_batches)
    peer = common.torchani_ani1x().train()
    ours = common.ours_from(peer).train()
    painn = common.painn().train()
    agreement = common.check_agreement(peer, chosen[0], train_step=(ours_step, peer_step))

    ours_batches = [common.flat(b) for b in chosen]
    peer_batches = [common.padded_labelled(b) for b in chosen]
    steps = {
        "ours": (ours_step(ours, torch.optim.Adam(ours.parameters(), LR)), ours_batches),
        "peer": (peer_step(peer, torch.optim.Adam(peer.parameters(), LR)), peer_batches),
        "painn": (ours_step(painn, torch.optim.Adam(painn.parameters(), LR)), ours_batches[:PAINN_BATCHES]),
    }

    def runner(step, items):
        def go():
            for item in items:
                step(item)
            return batch_size * len(items)
        return go

    runs = {name: runner(step, items) for name, (step, items) in steps.items()}
    for go in runs.values():  # warm-up: native kernels built, allocator and caches primed
        go()
    rates = common.interleaved(runs, repeats)
    inputs = {"molecules_per_batch": batch_size, "batches_per_repeat": n_batches,
              "painn_batches_per_repeat": min(PAINN_BATCHES, n_batches), **common.describe(chosen),
              "dtype": "float32", "optimiser": f"Adam lr={LR}", "loss": "per-atom energy MSE + force MSE",
              "peer": "torchani.arch.ANI (ANI1x() architecture, fresh weights), padded batches, all-pairs "
                      "neighbours, loss.backward()",
              "ours": "foundation ANI with the peer's weights; predict + energy_force_loss; loss.backward()"}
    shares = common.profile_shares(runs["ours"])
    ani = common.figure("train_step_vs_torchani", "molecules/s", rates["ours"], rates["peer"], goal=2.0,
                        inputs=inputs, agreement=agreement, profile_ours=shares)
    common.explain(ani, f"the element networks' matrix products ({shares['matmul (element networks / layers)']}% "
                        "of our step) cost the same on both sides (same sizes, same BLAS); the AEV, where we "
                        "are several times faster, is the rest")
    painn_fig = common.painn_figure("painn_train_step_vs_torchani", "molecules/s", rates, inputs,
                                    f"foundation PaiNN {common.painn_size(painn)}")
    return [ani, painn_fig]


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
