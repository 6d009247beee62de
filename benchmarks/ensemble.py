"""The 8-member ANI-1x ensemble users get by name, ours vs TorchANI 2.9's (`python -m
benchmarks.ensemble`, ~2 minutes on a quiet machine).

Ours is `foundation.load_pretrained("ani-1x")` (the published weights shipped in the package);
the peer is TorchANI's ANI-1x architecture, 8 members, holding exactly those weights
(`common.torchani_from_ours`; checked to agree in float64 before timing). Both float32, weights
frozen, one thread, in turns in one process (`common.interleaved`, ratios on CPU time). Three
workloads, each for the 8-member ensemble and, in the same run, for its first member alone:
- batched inference, energies + forces, 128 small organic molecules per batch (as
  `benchmarks.inference`): ours `model(batch)`, the peer on padded tensors + `autograd.grad`;
- MD through ASE: ibuprofen (33 atoms), velocity Verlet, ours `FoundationCalculator`, the peer
  its own `torchani.ase.Calculator` (as `benchmarks.md`);
- single-structure latency: energy + forces of methyl acetate (11 atoms) per ASE call, the
  positions moved between calls (what a new user measures first).
Figures: `ensemble_{inference,md,latency}_vs_torchani` (goals 2.5, 1.5, 1.3; the one-member
figures under `one_member`), and `ensemble_cost_8_vs_1`: our 8-member latency against our
one-member latency as a rate ratio (goal 0.4, i.e. an 8-member call costs at most 2.5 one-member
calls; the batched and MD cost ratios alongside). The inference figure also records the members'
networks evaluated as stacked batched matmuls (what `foundation.models.ani_ensemble` does)
against `torch.func.functional_call` + `vmap` over stacked parameters.
"""

from __future__ import annotations

import copy
import statistics

import numpy as np
import torch

from benchmarks import common
from benchmarks.md import SMILES as MD_SMILES
from benchmarks.md import dynamics, molecule
from foundation.errors import entry_point

BATCH, N_BATCHES, REPEATS = common.sized((128, 2, 5), (4, 1, 1))
MD_STEPS, LATENCY_CALLS = common.sized((40, 60), (3, 3))
LATENCY_SMILES = "COC(C)=O"  # methyl acetate, 11 atoms
COST_GOAL = 2.5  # an 8-member call costs at most this many one-member calls
KINDS = ("ours8", "peer8", "ours1", "peer1")


def models() -> dict[str, torch.nn.Module]:
    ours8 = common.ani1x_ensemble()
    ours1 = copy.deepcopy(ours8.members[0]).eval()
    return {"ours8": ours8, "peer8": common.torchani_from_ours(ours8),
            "ours1": ours1, "peer1": common.torchani_from_ours(ours1)}


def agreement(found: dict, samples) -> dict:
    """Each pair in float64 on `samples` (the peer converted from a float64 copy of ours, as the
    timed one is from ours): max |a - b| / max |b| of total energies and forces, and the
    conversion's self-energy spread over members."""
    from foundation.units import HARTREE_TO_EV

    out = {}
    for n in ("8", "1"):
        ours = copy.deepcopy(found[f"ours{n}"]).double()
        peer = common.torchani_from_ours(ours)  # from the float64 copy: self energies not rounded to float32
        pred = ours(common.flat(samples, torch.float64))
        numbers, coords = common.padded(samples, torch.float64)
        coords.requires_grad_(True)
        energy = peer((numbers, coords)).energies
        (grad,) = torch.autograd.grad(energy.sum(), coords)
        relative = {"energy": common._relative(pred["energy"], energy * HARTREE_TO_EV),
                    "forces": common._relative(pred["forces"], -grad[numbers >= 0] * HARTREE_TO_EV)}
        out[f"{n}_member{'s' if n == '8' else ''}"] = relative
    out["ok"] = all(v <= common.AGREEMENT_TOLERANCE for r in out.values() for v in r.values())
    out["self_energy_spread_over_members_eV"] = found["peer8"].conversion_spread_ev
    out["measure"] = "float64, max |a - b| / max |b|, total energies"
    return out


# ---- the three workloads ----------------------------------------------------------------------
def batched_runs(found: dict, chosen) -> dict:
    from benchmarks.inference import ours_infer, peer_infer

    flat = [common.flat(b) for b in chosen]
    padded = [common.padded(b) for b in chosen]

    def runner(fn, items):
        def go():
            for item in items:
                fn(item)
            return BATCH * len(items)
        return go

    return {k: runner(ours_infer(m) if k.startswith("ours") else peer_infer(m), flat if k.startswith("ours") else padded)
            for k, m in found.items()}


def md_runs(found: dict) -> dict:
    from foundation.calculators import FoundationCalculator

    def runner(md):
        def go():
            md.run(MD_STEPS)
            return MD_STEPS
        return go

    systems = {k: dynamics(FoundationCalculator(m, device="cpu") if k.startswith("ours") else m.ase())
               for k, m in found.items()}
    return {k: runner(md) for k, (_, md) in systems.items()}


def latency_runs(found: dict) -> dict:
    from foundation.calculators import FoundationCalculator

    def runner(calc):
        atoms = molecule(LATENCY_SMILES)
        atoms.calc = calc
        rng = np.random.default_rng(0)
        start = atoms.positions.copy()

        def go():
            for _ in range(LATENCY_CALLS):
                atoms.positions = start + rng.normal(0, 0.01, start.shape)  # a new structure each call
                atoms.get_forces()
            return LATENCY_CALLS
        return go

    return {k: runner(FoundationCalculator(m, device="cpu") if k.startswith("ours") else m.ase())
            for k, m in found.items()}


def stacked_vs_vmap(ensemble, samples, repeats: int = 5) -> dict:
    """ms per pass (networks forward + gradient to the positions through the shared AEV) of the
    8 members' element networks: stacked weights + batched matmuls vs functional_call + vmap."""
    from torch.func import functional_call, stack_module_state, vmap

    from foundation.models.element_groups import ElementGrouping

    shared = ensemble._shared()
    batch = common.flat(samples)
    species, counts = ensemble._species(batch)
    positions = batch.positions.detach().requires_grad_(True)
    features = shared.features(batch, positions, species)
    names = list(ensemble.members[0].networks)
    stacked = {n: stack_module_state([m.networks[n] for m in ensemble.members]) for n in names}
    skeleton = {n: copy.deepcopy(ensemble.members[0].networks[n]).to("meta") for n in names}

    def with_vmap():
        grouping = ElementGrouping(species, counts)
        out = [vmap(lambda p, b, x, n=n: functional_call(skeleton[n], (p, b), (x,)), in_dims=(0, 0, None))(
            *stacked[n], block) for n, block in zip(names, grouping.split(features))]
        return grouping.minus_zero_rows(torch.cat(out, 1), 1)

    def with_stacks():
        return shared.learned(features, species, counts)[0]

    def timed(fn):
        def go():
            torch.autograd.grad(fn().sum(), positions, retain_graph=True)
            return 1
        return go

    rates = common.interleaved({"stacked": timed(with_stacks), "vmap": timed(with_vmap)}, repeats)
    ms = {k: 1e3 / statistics.median(v["cpu"]) for k, v in rates.items()}
    return {"stacked_ms": ms["stacked"], "vmap_ms": ms["vmap"], "molecules": len(samples),
            "what": "8 members' element networks + gradient to the positions, float32, one thread"}


# ---- figures ------------------------------------------------------------------------------------
def one_member(rates: dict) -> dict:
    ours, peer = (statistics.median(rates[k]["cpu"]) for k in ("ours1", "peer1"))
    return {"ours": ours, "peer": peer, "ratio": ours / peer, "samples": {k: rates[k] for k in ("ours1", "peer1")}}


def cost(rates: dict) -> float:
    """CPU time of an 8-member item over a one-member item, ours."""
    return statistics.median(rates["ours1"]["cpu"]) / statistics.median(rates["ours8"]["cpu"])


def run() -> list[dict]:
    torch.set_num_threads(1)
    found = models()
    chosen = common.batches(common.molecules(conformers=common.sized(4, 1)), BATCH, N_BATCHES, seed=1)
    agree = agreement(found, chosen[0][:8])
    base = {"ours": "foundation.load_pretrained('ani-1x') (8 members; one_member: its member 0), float32",
            "peer": "TorchANI ANI-1x architecture with the same weights (8 members; one_member: 1), float32",
            "threads": 1, "dtype": "float32"}
    figures, costs = [], {}
    workloads = (("inference", "molecules/s", 2.5, lambda: batched_runs(found, chosen),
                  {"molecules_per_batch": BATCH, "batches_per_repeat": N_BATCHES, **common.describe(chosen),
                   "outputs": "energies and forces (autograd, no graph kept)"}),
                 ("md", "steps/s", 1.5, lambda: md_runs(found),
                  {"molecule": f"ibuprofen ({len(molecule(MD_SMILES))} atoms)", "integrator": "ASE VelocityVerlet",
                   "steps_per_repeat": MD_STEPS}),
                 ("latency", "calls/s", 1.3, lambda: latency_runs(found),
                  {"molecule": f"methyl acetate {LATENCY_SMILES} ({len(molecule(LATENCY_SMILES))} atoms)",
                   "calls_per_repeat": LATENCY_CALLS, "call": "atoms.get_forces() after moving the atoms (E + F)"}))
    for name, unit, goal, make, inputs in workloads:
        runs = make()
        for go in runs.values():  # warm-up
            go()
        rates = common.interleaved(runs, REPEATS)
        costs[name] = {"cost_8_over_1": cost(rates), "rates": rates}
        fig = common.figure(f"ensemble_{name}_vs_torchani", unit, rates["ours8"], rates["peer8"], goal=goal,
                            inputs={**base, **inputs}, agreement=agree, one_member=one_member(rates),
                            cost_8_over_1={"ours": cost(rates), "peer": statistics.median(rates["peer1"]["cpu"])
                                           / statistics.median(rates["peer8"]["cpu"])},
                            conditions=conditions())
        if name == "inference":
            fig["networks_stacked_vs_vmap"] = stacked_vs_vmap(found["ours8"], chosen[0][:common.sized(32, 2)])
        common.explain(fig, "the 8 members' element networks: each reads its own weights (2.6 M floats in all), "
                            "the same work on both sides")
        figures.append(fig)
    latency = costs["latency"]["rates"]
    ratio = statistics.median(latency["ours8"]["cpu"]) / statistics.median(latency["ours1"]["cpu"])
    fig = common.figure("ensemble_cost_8_vs_1", "calls/s", latency["ours8"], latency["ours1"], goal=1 / COST_GOAL,
                        ratio=ratio, inputs={**base, "peer": "ours, its member 0 alone (one-member calls/s)",
                                             "workload": "single-structure latency (ensemble_latency_vs_torchani)"},
                        note=f"ratio = 8-member rate / 1-member rate; goal {1 / COST_GOAL:g}: an 8-member call "
                             f"costs at most {COST_GOAL}x a one-member call",
                        cost_8_over_1={k: v["cost_8_over_1"] for k, v in costs.items()}, conditions=conditions())
    common.explain(fig, f"an 8-member call costs {1 / ratio:.2f}x a one-member call: the networks' weights, "
                        "8x as many, are read on every call")
    return [*figures, fig]


def conditions() -> dict:
    import os

    return {"load_average_1min": round(os.getloadavg()[0], 2)}


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
