"""What the model benchmarks share: the molecules, the TorchANI peer with our weights, timing with
interleaved repeats, and the figure JSON (DESIGN.md, "Benchmark results").

Timing discipline (the machine is shared): one thread per process, ours and the peer measured in
turns (ours, peer, ours, peer, ...) so a change of load hits both, the median over repeats, and
CPU process time next to wall time. Ratios use process time: with one thread it is the work the
code did, while wall time also counts the waits for a core that other jobs hold.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from foundation.files import write_text_atomic  # noqa: E402
from foundation.data import Sample  # noqa: E402

# `python -m benchmarks.run_all --quick` sets these for its children: every script at a tiny size
# (a check that it runs end to end; its numbers mean nothing) writing into a scratch folder.
QUICK = os.environ.get("FOUNDATION_BENCH_QUICK") == "1"
RESULTS = Path(os.environ.get("FOUNDATION_BENCH_RESULTS") or Path(__file__).parent / "results")


def sized(full, tiny):
    """`full`, or `tiny` in a quick run."""
    return tiny if QUICK else full


def fingerprint(*paths: Path) -> str:
    """The sha256 of the files' contents, in order (first 16 hex digits): what a kept result was made from."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def work_dir(name: str):
    """A benchmark's scratch folder: `$FOUNDATION_BENCH_WORK/<name>`, kept (so a later script can
    start from what this one trained, `make bench-peers`), or a temporary one when that is unset."""
    root = os.environ.get("FOUNDATION_BENCH_WORK")
    if root:
        path = Path(root).resolve() / name
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        yield Path(tmp)

# Small organic H/C/N/O molecules of 10-30 atoms (hydrogens included), as in ANI-1x's GDB subsets.
SMILES = {
    "pyrrole": "c1cc[nH]c1", "glycine": "NCC(=O)O", "pyridine": "c1ccncc1", "benzene": "c1ccccc1",
    "dmf": "CN(C)C=O", "alanine": "CC(N)C(=O)O", "phenol": "c1ccc(O)cc1", "thf": "C1CCOC1",
    "benzonitrile": "N#Cc1ccccc1", "ethyl_acetate": "CC(=O)OCC", "glycerol": "OCC(O)CO",
    "butanoic_acid": "CCCC(=O)O", "isobutanol": "CC(C)CO", "nicotinamide": "NC(=O)c1cccnc1",
    "indole": "c1ccc2[nH]ccc2c1", "salicylic_acid": "O=C(O)c1ccccc1O", "piperidine": "C1CCNCC1",
    "cyclohexanone": "O=C1CCCCC1", "naphthalene": "c1ccc2ccccc2c1", "acetanilide": "CC(=O)Nc1ccccc1",
    "valine": "CC(C)C(N)C(=O)O", "glutamic_acid": "OC(=O)CCC(N)C(=O)O", "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O", "triethylamine": "CCN(CC)CC", "phenylalanine": "NC(Cc1ccccc1)C(=O)O",
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "inositol": "OC1C(O)C(O)C(O)C(O)C1O", "octane": "CCCCCCCC",
    "sorbitol": "OCC(O)C(O)C(O)C(O)CO", "octanol": "CCCCCCCCO", "ethylhexanol": "CCCCC(CC)CO",
}
ELEMENTS = [1, 6, 7, 8]
HEAD = "wb97x_631gs"
AGREEMENT_TOLERANCE = 1e-5  # relative, the bar for "computes the same thing"


def molecules(min_atoms: int = 10, max_atoms: int = 30, conformers: int = 4, noise: float = 0.05,
              seed: int = 0, names: list[str] | None = None) -> list[Sample]:
    """RDKit ETKDG conformers of `SMILES` (or of its `names`) with `min_atoms`..`max_atoms`
    atoms, each rattled by `noise` Å (Gaussian), with random labels (energies eV, forces eV/Å)
    of realistic size: the timed work does not depend on their values."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    RDLogger.DisableLog("rdApp.*")
    rng = np.random.default_rng(seed)
    out = []
    for name, smiles in SMILES.items():
        if names is not None and name not in names:
            continue
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        if not min_atoms <= mol.GetNumAtoms() <= max_atoms:
            continue
        ids = AllChem.EmbedMultipleConfs(mol, numConfs=conformers, randomSeed=seed)
        numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
        for cid in ids:
            positions = mol.GetConformer(cid).GetPositions() + rng.normal(0, noise, (len(numbers), 3))
            out.append(Sample(numbers, positions, energies={HEAD: -1000.0 * len(numbers) + rng.normal()},
                              forces={HEAD: rng.normal(0, 1.0, (len(numbers), 3))}, molecule=name))
    return out


def batches(samples: list[Sample], size: int, count: int, seed: int = 0) -> list[list[Sample]]:
    """`count` batches of `size` samples drawn without replacement (reshuffled as needed)."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    out = []
    for _ in range(count):
        while len(order) < size:
            order += rng.permutation(len(samples)).tolist()
        out.append([samples[k] for k in order[:size]])
        order = order[size:]
    return out


def padded(samples: list[Sample], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """TorchANI's input: atomic numbers (B, A) padded with -1 and coordinates (B, A, 3) Å."""
    width = max(s.n_atoms for s in samples)
    numbers = torch.full((len(samples), width), -1, dtype=torch.long)
    coords = torch.zeros(len(samples), width, 3, dtype=dtype)
    for k, s in enumerate(samples):
        numbers[k, : s.n_atoms] = torch.from_numpy(s.numbers)
        coords[k, : s.n_atoms] = torch.from_numpy(s.positions).to(dtype)
    return numbers, coords


def torchani_ani1x(seed: int = 0) -> torch.nn.Module:
    """TorchANI's ANI-1x architecture (`AEVComputer.like_1x()` AEV, `ani1x` element networks,
    cosine cutoff, all-pairs neighbours), as its `ANI1x()` builder assembles it, one member with
    fresh weights (the pretrained ones are not available offline)."""
    torch.manual_seed(seed)
    return _torchani_ani1x_members(1).requires_grad_(True)


def ani1x_ensemble() -> torch.nn.Module:
    """Our 8-member `ani-1x` from the registry (the published ANI-1x weights shipped in the
    package), weights frozen, eval mode: what a user gets by name."""
    import foundation

    return foundation.load_pretrained("ani-1x", device="cpu").requires_grad_(False)


def torchani_from_ours(ours: torch.nn.Module, head: str = HEAD) -> torch.nn.Module:
    """TorchANI's ANI-1x architecture (as `torchani_ani1x`) holding the weights of our ANI model or
    ensemble (one TorchANI member per member): the same networks, the output layers back in
    Hartree, and self energies such that both give the same energies. Ours subtracts NN_Z(0) per
    atom with per-member reference energies (`foundation.hub.ani.weights`); TorchANI has one set
    of self energies for all members, recovered as reference − NN_Z(0) (equal over members up to
    rounding; the mean is taken, the largest difference returned in `.conversion_spread_ev`)."""
    from foundation.units import HARTREE_TO_EV

    members = list(getattr(ours, "members", [ours]))
    peer = _torchani_ani1x_members(len(members))
    symbols = [s for s in members[0].networks]
    state = dict(peer.state_dict())
    self_energies = []
    for m, member in enumerate(members):
        prefix = f"potentials.nnp.neural_networks.members.{m}.atomics" if len(members) > 1 else \
            "potentials.nnp.neural_networks.atomics"
        row = member.head_index(head)
        with torch.no_grad():
            for sym, net in member.networks.items():
                linears = [layer for layer in net.layers if isinstance(layer, torch.nn.Linear)]
                for k, layer in enumerate(linears):
                    state[f"{prefix}.{sym}.layers.{k}.weight"] = layer.weight.detach().clone()
                    state[f"{prefix}.{sym}.layers.{k}.bias"] = layer.bias.detach().clone()
                out = net.heads[head]
                state[f"{prefix}.{sym}.final_layer.weight"] = out.weight.detach() / HARTREE_TO_EV
                state[f"{prefix}.{sym}.final_layer.bias"] = out.bias.detach() / HARTREE_TO_EV
            zero = {sym: float(copy.deepcopy(net).double()(torch.zeros(1, member.aev.out_dim,
                                                                      dtype=torch.float64))[0, row])
                    for sym, net in member.networks.items()}
        refs = member.reference_energies[row]
        self_energies.append([(float(refs[k]) - zero[sym]) / HARTREE_TO_EV for k, sym in enumerate(symbols)])
    table = np.array(self_energies)
    peer.load_state_dict(state)
    # float64 before any cast: self energies are ~1e1 Hartree, float32 would lose 1e-4 eV
    peer.energy_shifter.self_energies = torch.tensor(table.mean(0), dtype=torch.float64)
    peer.conversion_spread_ev = float(np.ptp(table, axis=0).max() * HARTREE_TO_EV)
    return peer.to(members[0].dtype).eval().requires_grad_(False)


def _torchani_ani1x_members(n: int) -> torch.nn.Module:
    from torchani.arch import Assembler
    from torchani.utils import SYMBOLS_1X

    asm = Assembler(periodic_table_index=True)
    asm.set_symbols(SYMBOLS_1X)
    asm.set_global_cutoff_fn("cosine")
    asm.set_aev_computer(radial="ani1x", angular="ani1x", strategy="pyaev")
    asm.set_atomic_networks(ctor="ani1x")
    asm.set_neighborlist("all_pairs")
    asm.set_gsaes_as_self_energies("wb97x-631gd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asm.assemble(n)


def ours_from(peer: torch.nn.Module) -> torch.nn.Module:
    """Our ANI model with the peer's weights (Hartree -> eV folded into the output layers)."""
    from foundation.hub import from_torchani

    return from_torchani(peer).requires_grad_(True)


def painn(seed: int = 0) -> torch.nn.Module:
    """Our PaiNN at its default size, fresh weights."""
    from foundation.models import PaiNNConfig

    torch.manual_seed(seed)
    return PaiNNConfig(elements=ELEMENTS, heads=[HEAD]).build()


def painn_size(model) -> str:
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    return f"(hidden {c.hidden}, {c.num_interactions} interactions, cutoff {c.cutoff} Å, {n} parameters)"


def flat(samples: list[Sample], dtype: torch.dtype = torch.float32):
    """Our input: one flat `AtomsBatch`."""
    from foundation.data import collate

    return collate(samples, fidelities=[HEAD], dtype=dtype)


def padded_labelled(samples: list[Sample], dtype: torch.dtype = torch.float32):
    """TorchANI's input with labels in its units: numbers, coordinates, energies (B,) float64
    Hartree, forces (B, A, 3) Hartree/Å (0 on padding)."""
    from foundation.units import HARTREE_TO_EV

    numbers, coords = padded(samples, dtype)
    energy = torch.tensor([s.energies[HEAD] for s in samples], dtype=torch.float64) / HARTREE_TO_EV
    forces = torch.zeros_like(coords)
    for k, s in enumerate(samples):
        forces[k, : s.n_atoms] = torch.from_numpy(s.forces[HEAD]).to(dtype) / HARTREE_TO_EV
    return numbers, coords, energy, forces


def describe(chosen: list[list[Sample]]) -> dict:
    sizes = [s.n_atoms for b in chosen for s in b]
    return {"atoms_per_molecule": f"{min(sizes)}-{max(sizes)} (mean {sum(sizes) / len(sizes):.1f})",
            "distinct_molecules": len({s.molecule for b in chosen for s in b}),
            "molecule_source": "RDKit ETKDG conformers of benchmarks.common.SMILES, rattled 0.05 Å"}


def check_agreement(peer: torch.nn.Module, samples: list[Sample], train_step: tuple | None = None) -> dict:
    """Ours (with the peer's weights) against the peer on `samples`. Energies are compared less
    the self energies (the networks' part; the -1e4 eV offsets would hide any error). Figures are
    max |a - b| / max |b|:
    - float64: ours vs peer, energies and forces: the check that both compute the same function;
    - float32: each side's float32 result vs the float64 peer (rounding of each implementation);
    - with `train_step` = (ours_step, peer_step) factories, one float64 training step: the loss
      (ours = (Hartree->eV)^2 x peer's: our output layers carry the unit) and the gradients of
      every first layer. Deeper layers' gradients differ by design: our ANI subtracts NN_Z(0) per
      atom (an isolated atom weighs exactly its reference energy), which depends on them.
    `ok` when every figure is below `AGREEMENT_TOLERANCE`, the float32 ones excepted: there the
    bar is that ours is no less accurate than the peer (at most 2x its error or 1e-5)."""
    results = {dtype: _energies_forces(peer, samples, dtype) for dtype in (torch.float64, torch.float32)}
    (e_ours64, f_ours64, e_peer64, f_peer64), (e_ours32, f_ours32, e_peer32, f_peer32) = results.values()
    out: dict = {"tolerance": AGREEMENT_TOLERANCE, "measure": "max |a - b| / max |b|", "molecules": len(samples),
                 "float64_ours_vs_peer": {"energy": _relative(e_ours64, e_peer64),
                                          "forces": _relative(f_ours64, f_peer64)},
                 "float32_ours_vs_float64": {"energy": _relative(e_ours32, e_peer64),
                                             "forces": _relative(f_ours32, f_peer64)},
                 "float32_peer_vs_float64": {"energy": _relative(e_peer32, e_peer64),
                                             "forces": _relative(f_peer32, f_peer64)}}
    checks = list(out["float64_ours_vs_peer"].values())
    for key in ("energy", "forces"):
        ours, theirs = out["float32_ours_vs_float64"][key], out["float32_peer_vs_float64"][key]
        checks.append(0.0 if ours <= max(2 * theirs, AGREEMENT_TOLERANCE) else math.inf)
    if train_step is not None:
        out["training_step_float64"] = _gradient_agreement(peer, samples, *train_step)
        checks += list(out["training_step_float64"].values())
    out["ok"] = bool(all(v <= AGREEMENT_TOLERANCE for v in checks))
    return out


def _energies_forces(peer, samples, dtype):
    """(ours energies, ours forces, peer energies, peer forces) in eV, eV/Å, float64 tensors;
    energies less the self energies."""
    from foundation.units import HARTREE_TO_EV

    theirs = copy.deepcopy(peer).to(dtype).eval()
    ours = ours_from(theirs).eval()
    pred = ours(flat(samples, dtype))
    numbers, coords = padded(samples, dtype)
    coords.requires_grad_(True)
    energy = theirs((numbers, coords)).energies
    (grad,) = torch.autograd.grad(energy.sum(), coords)
    self_energy = peer.energy_shifter.self_energies.double()
    index = {z: k for k, z in enumerate(ELEMENTS)}
    offset = torch.stack([self_energy[[index[int(z)] for z in s.numbers]].sum() for s in samples]) * HARTREE_TO_EV
    return (pred["energy"].detach() - offset, pred["forces"].detach().double(),
            energy.detach().double() * HARTREE_TO_EV - offset, -grad[numbers >= 0].double() * HARTREE_TO_EV)


def _gradient_agreement(peer, samples, ours_step, peer_step) -> dict:
    from foundation.units import HARTREE_TO_EV

    theirs = copy.deepcopy(peer).double().train()
    ours = ours_from(theirs).train()
    loss_ours = ours_step(ours, torch.optim.SGD(ours.parameters(), lr=0.0))(flat(samples, torch.float64))
    loss_peer = peer_step(theirs, torch.optim.SGD(theirs.parameters(), lr=0.0))(
        padded_labelled(samples, torch.float64))
    theirs_params = dict(theirs.named_parameters())
    worst = 0.0
    for symbol, net in ours.networks.items():
        peer_weight = theirs_params[f"potentials.nnp.neural_networks.atomics.{symbol}.layers.0.weight"]
        worst = max(worst, _relative(net.layers[0].weight.grad, peer_weight.grad * HARTREE_TO_EV ** 2))
    return {"loss": _relative(loss_ours.detach(), loss_peer.detach() * HARTREE_TO_EV ** 2),
            "first_layer_gradients": worst}


def _relative(ours: torch.Tensor, peer: torch.Tensor) -> float:
    ours, peer = ours.detach().double(), peer.detach().double()
    return float((ours - peer).abs().max() / peer.abs().max().clamp(min=1e-300))


def interleaved(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Call each run in turn, `repeats` rounds. A run does its work and returns how many items it
    handled. Returns {name: {"cpu": [items/s per round], "wall": [...]}} (process and wall time)."""
    rates: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            items = run()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rates[name]["cpu"].append(items / cpu)
            rates[name]["wall"].append(items / wall)
    return rates


def figure(name: str, unit: str, ours, peer, goal: float | None, inputs: dict, ratio: float | None = None,
           versioned: tuple[str, ...] | None = None, **extra) -> dict:
    """The figure JSON (DESIGN.md, "Benchmark results") from repeated measurements of ours and the
    peer: each a list of values, or `interleaved` rates ({"cpu": [...], "wall": [...]}), of which
    the process-time medians make the figure and the wall-time ones go alongside. `ratio` is ours
    / peer medians unless given (e.g. for errors, where lower is better); `versioned` names the
    packages whose versions are recorded."""
    timed = isinstance(ours, dict)
    values = {"ours": ours["cpu"] if timed else list(ours), "peer": peer["cpu"] if timed else list(peer)}
    med = {k: statistics.median(v) for k, v in values.items()}
    ratio = med["ours"] / med["peer"] if ratio is None else ratio
    out = {
        "name": name, "unit": unit, "ours": med["ours"], "peer": med["peer"], "ratio": ratio,
        "goal": goal, "goal_met": None if goal is None else bool(ratio >= goal),
        "machine": machine(), "threads": torch.get_num_threads(),
        "versions": versions(versioned) if versioned else versions(),
        "environment": {k: v for k, v in sorted(os.environ.items())
                        if k.startswith(("MALLOC_", "GLIBC_TUNABLES", "OMP_", "MKL_"))},
        "inputs": inputs, "repeats": len(values["ours"]),
        "spread": {k: {"min": min(v), "max": max(v)} for k, v in values.items()},
    }
    if timed:
        wall = {k: statistics.median(v["wall"]) for k, v in (("ours", ours), ("peer", peer))}
        out["ratio_basis"] = "CPU process time (time.process_time), median over repeats"
        out["wall"] = {**wall, "ratio": wall["ours"] / wall["peer"]}
        for k, v in (("ours", ours), ("peer", peer)):
            out["spread"][k].update(wall_min=min(v["wall"]), wall_max=max(v["wall"]))
        out["samples"] = {"ours": ours, "peer": peer}
    return {**out, **extra}


def painn_figure(name: str, unit: str, rates: dict, inputs: dict, ours: str) -> dict:
    """The informational figure of our PaiNN (`rates["painn"]`) against the same TorchANI peer."""
    return figure(name, unit, rates["painn"], rates["peer"], goal=None, inputs={**inputs, "ours": ours},
                  note="informational: our message-passing model against TorchANI's ANI-1x; no goal")


def explain(fig: dict, limits: str) -> None:
    """Where a goal is missed, say by how much and what limits it (kept in the JSON and the table)."""
    if fig["goal"] is not None and not fig["goal_met"]:
        fig["shortfall"] = f"ratio {fig['ratio']:.2f}, {fig['goal'] / fig['ratio']:.2f}x short of the goal {fig['goal']}"
        fig["limits"] = limits


def profile_shares(fn: Callable[[], object]) -> dict[str, float]:
    """Share of self CPU time (%) per kind of work while `fn` runs once under torch.profiler:
    what our time goes into, to say what limits a ratio."""
    from torch.profiler import ProfilerActivity, profile

    kinds = {"matmul (element networks / layers)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear"),
             "AEV sums (C kernels)": ("_Sum", "_SumBackward", "_SumBackwardBackward"),
             "optimiser": ("Optimizer.",)}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    totals = {k: 0.0 for k in kinds} | {"other": 0.0}
    for event in prof.key_averages():
        kind = next((k for k, names in kinds.items() if event.key.startswith(names)), "other")
        totals[kind] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: round(100 * v / whole, 1) for k, v in totals.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def versions(names=("foundation-mlip", "torch", "torchani", "vesin", "numpy", "ase", "torch_geometric",
                    "rdkit")) -> dict:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {**found, "python": platform.python_version()}


def write(fig: dict) -> Path:
    """RESULTS/<name>.json, atomically."""
    return write_text_atomic(RESULTS / f"{fig['name']}.json", json.dumps(fig, indent=1) + "\n")


def report(fig: dict, seconds: float) -> None:
    print(f"{fig['name']}: ours {fig['ours']:.4g} vs peer {fig['peer']:.4g} {fig['unit']}, ratio "
          f"{fig['ratio']:.2f} (goal {fig['goal']}) in {seconds:.0f} s -> {write(fig)}", flush=True)


def run_and_report(run) -> None:
    """A benchmark script's `main`: run its figures and write/print each."""
    start = time.perf_counter()
    for fig in run():
        report(fig, time.perf_counter() - start)
