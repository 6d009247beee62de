"""Candidate structures for selection, from wherever they come:

    read_structures(path)  a shard folder (manifest.json), a labeller folder (structures.jsonl,
                           with any finished labels), or any file ASE reads
    conformer_pool(...)    ANI-style conformer sampling from SMILES (normal modes of MMFF minima)
    md_pool(model, ...)    snapshots of Langevin MD driven by the current model: the structures
                           it will actually visit, including the ones it gets wrong

Every candidate's `source` is its identity (unique in a pool): the loop's ledger and the
selection file record it, and a lookup oracle finds labels by it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.data.molecules import molecule_key
from foundation.data import Sample
from foundation.errors import DataError, UserError
from foundation.files import replacing, write_text_atomic
# Aliased: this module's read_structures / write_structures are candidate pools (Samples), not the file.
from foundation.pipelines.label.structures import Structure, has_structures
from foundation.pipelines.label.structures import read_structures as read_structures_file
from foundation.pipelines.label.structures import write_structures as write_structures_file


def read_structures(path: str | os.PathLike, split: str | None = None) -> list[Sample]:
    """Structures (and any labels they carry) from a shard folder, a labeller folder or a file.
    `split` picks one split of a shard or labeller folder (default: all)."""
    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file() or path.name == "manifest.json":
        samples = _from_shards(path, split)
    elif path.is_dir() and has_structures(path):
        samples = _from_labeller(path, split)
    elif path.is_dir():
        raise DataError(f"{path}: a folder without manifest.json or structures.jsonl")
    else:
        samples = _from_file(path)
    if not samples:
        raise DataError(f"{path}: no structures" + (f" in split {split!r}" if split else ""))
    return unique_sources(samples)


def _from_shards(path: Path, split: str | None) -> list[Sample]:
    from foundation.data import iter_samples, load_manifest

    manifest = load_manifest(path)
    splits = [split] if split else manifest.splits
    if split and split not in manifest.splits:
        raise DataError(f"{path}: no split {split!r} (has {', '.join(manifest.splits)})")
    return [s for name in splits for s in iter_samples(manifest, name)]


def _from_labeller(path: Path, split: str | None) -> list[Sample]:
    from foundation.pipelines.label.export import labels_by_structure
    from foundation.pipelines.label.store import read_records

    labels = labels_by_structure(read_records(path / "labels.jsonl"))
    out = []
    for s in read_structures_file(path):
        if split and s.split != split:
            continue
        got = labels.get(s.id, {})
        out.append(Sample(numbers=s.numbers, positions=s.positions, molecule=s.molecule, source=s.id,
                          energies={f: r["energy"] for f, r in got.items()},
                          forces={f: r["forces"] for f, r in got.items() if r.get("forces") is not None},
                          charge=s.charge, multiplicity=s.multiplicity))
    return out


def _from_file(path: Path) -> list[Sample]:
    from foundation.data.ase_io import read_atoms

    return [Sample(numbers=a.numbers, positions=a.positions, cell=np.asarray(a.cell), pbc=a.pbc,
                   molecule=str(a.info.get("molecule") or molecule_key(a.numbers, a.positions)),
                   source=str(a.info.get("source") or f"{path.name}:{i}"))
            for i, a in read_atoms(path)]


def unique_sources(samples: list[Sample]) -> list[Sample]:
    """Give every sample a distinct `source` (the first keeps its own; repeats get `#k`)."""
    seen: dict[str, int] = {}
    for k, s in enumerate(samples):
        name = s.source or f"structure:{k}"
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        seen.setdefault(name, 0)
        s.source = name
    return samples


def conformer_pool(smiles: Sequence[tuple[str, str]], n: int, seed: int = 0) -> list[Sample]:
    """`n` conformers of each (SMILES, name), as the labeller samples them; sources
    `<name>/s<seed>/<k>`."""
    from foundation.pipelines.label.conformers import sample_conformers

    out = []
    for smi, name in smiles:
        # One seed per molecule from (seed, SMILES): adding a molecule does not change the others.
        mol_seed = int.from_bytes(hashlib.sha256(f"{seed}:{smi}".encode()).digest()[:4], "little") & 0x7FFFFFFF
        for k, c in enumerate(sample_conformers(smi, n, seed=mol_seed)):
            out.append(Sample(c.numbers, c.positions, molecule=name, source=f"{name}/s{seed}/{k:04d}"))
    return out


def md_pool(model, starts: Sequence[Sample], steps: int, interval: int = 10, temperature: float = 500.0,
            dt: float = 0.5, seed: int = 0, head: str | None = None) -> list[Sample]:
    """Langevin MD (`temperature` K, `dt` fs) with `model` from each start; a snapshot every
    `interval` steps (sources `<start>/md<step>`). A run that blows up (atoms closer than 0.5 Å)
    stops there: its last sane frames are the interesting ones."""
    import ase
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    from foundation.calculators.ase_calculator import FoundationCalculator

    if steps < 1 or interval < 1:
        raise UserError(f"md pool: steps ({steps}) and interval ({interval}) must be at least 1")
    rng = np.random.default_rng(seed)
    calc = FoundationCalculator(model, head=head, device="cpu")
    out = []
    for start in starts:
        atoms = ase.Atoms(numbers=start.numbers, positions=start.positions, cell=start.cell, pbc=start.pbc)
        atoms.calc = calc
        _thermalize(atoms, temperature, rng)
        atoms.set_constraint(FixCom())  # ASE's advice: its Langevin `fixcm` biases small molecules
        dyn = Langevin(atoms, timestep=dt * units.fs, temperature_K=temperature, friction=0.01 / units.fs,
                       fixcm=False, rng=rng)
        for step in range(interval, steps + 1, interval):
            dyn.run(interval)
            snap = Sample(atoms.numbers.copy(), atoms.positions.copy(), molecule=start.molecule,
                          source=f"{start.source}/md{step:05d}")
            try:
                snap.validate()
            except DataError:
                break
            out.append(snap)
    return out


def _thermalize(atoms, temperature: float, rng) -> None:
    try:
        from ase.md.velocitydistribution import thermalize_momenta  # ASE >= 3.29
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)


def write_structures(path: str | os.PathLike, samples: Sequence[Sample], info: Sequence[dict] | None = None) -> Path:
    """Write `samples` (positions, and per structure `source`, `molecule` and the `info` dict's
    scalar values) to any format ASE writes, e.g. extxyz, atomically."""
    import ase
    import ase.io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = []
    for k, s in enumerate(samples):
        atoms = ase.Atoms(numbers=s.numbers, positions=s.positions, cell=s.cell, pbc=s.pbc)
        atoms.info.update({"source": s.source, "molecule": s.molecule})
        atoms.info.update({key: v for key, v in (info[k] if info else {}).items() if v is not None})
        images.append(atoms)
    with replacing(path, suffix=path.suffix) as tmp:
        ase.io.write(tmp, images, format=_ase_format(path))
    return path


def _ase_format(path: Path) -> str:
    from ase.io.formats import filetype

    try:
        return filetype(path, read=False)
    except Exception:  # noqa: BLE001 - ASE raises several types for an unknown extension
        raise UserError(f"{path}: ASE cannot tell the file format from the name (use .xyz or .extxyz)") from None


def save_labelled(folder: str | os.PathLike, samples: Sequence[Sample]) -> Path:
    """Write `samples` and all their labels as a labeller folder (structures.jsonl + labels.jsonl,
    ids = sources), which `read_structures` reads back: a frozen copy of a pool or test set that a
    growing source cannot change under a running experiment. structures.jsonl goes last: it marks
    the copy complete."""
    folder = Path(folder)
    records = [{"id": s.source, "fidelity": fid, "status": "ok", "energy": e,
                "forces": s.forces[fid].tolist() if fid in s.forces else None}
               for s in samples for fid, e in sorted(s.energies.items())]
    write_text_atomic(folder / "labels.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write_structures_file(folder, [Structure(id=s.source, molecule=s.molecule, numbers=s.numbers, positions=s.positions,
                                             sampling="copy", split="train", levels=[], charge=s.charge,
                                             multiplicity=s.multiplicity) for s in samples], replace=True)
    return folder


def bare(sample: Sample) -> Sample:
    """The structure without its labels: what a selector may see of a candidate."""
    return Sample(sample.numbers, sample.positions, cell=sample.cell, pbc=sample.pbc,
                  molecule=sample.molecule, source=sample.source)
