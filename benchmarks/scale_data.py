"""ANI-1x-sized synthetic shard sets for the scale rehearsal (`benchmarks/scale_rehearsal.py`),
written in minutes: 5 M conformations are ~8 GB of shards.

Each conformation is a perturbed copy of a real molecule of 5-30 atoms (H, C, N, O): the
embedded data set's molecules (`data_pipelines/embedded/labels/structures.jsonl`) and the larger
drug-like ones of `benchmarks.common.SMILES` (RDKit conformers). A copy is the seed geometry
rattled by a Gaussian of 0.02-0.12 Å (clipped at 2.5 σ, the spread of normal-mode sampling),
rotated and shifted at random; a seed is picked with probability proportional to its size (mean
~16 atoms per conformation). Labels follow a harmonic well around the seed, so they are of
realistic size and self-consistent (never chemistry): E_dft = Σ free-atom energies − 2 eV per atom
+ ½ k |Δr|², F = −k Δr (k = 20 eV/Å²); every tenth conformation also has a CC energy, as in
ANI-1ccx's 500 k of ANI-1x's 5 M.

Speed comes from doing per chunk of conformations what `ShardWriter` does per sample: geometry
and labels are made with numpy for all copies of a given atom count at once, each record is one
`msgpack.packb` of byte slices (the `record.py` format, read by the normal reader), and the tar
headers of a shard are filled in as one numpy array. Shards are written to a hidden temp name and
renamed when complete, like `ShardWriter`'s, but not fsynced: this is scratch data.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import msgpack
import numpy as np

from foundation.data import write_manifest
from foundation.data.shards.record import MEMBER, VERSION, label_set
from foundation.data.shards.writer import ShardInfo
from foundation.units import HARTREE_TO_EV

DFT, CC = "wb97x_631gs", "ccsdt_ccpvdz"
REPO = Path(__file__).resolve().parents[1]
EMBEDDED_LABELS = REPO / "data_pipelines" / "embedded" / "labels"  # its structures.jsonl
FREE_ATOM_EV = {z: e * HARTREE_TO_EV for z, e in {1: -0.500, 6: -37.845, 7: -54.589, 8: -75.067}.items()}
FORCE_CONSTANT = 20.0  # eV/Å², force constant of the harmonic labels
_SIGMA = (0.02, 0.12)  # Å, range of the per-conformation rattle
_MIN_DISTANCE = 0.7  # Å; a rattle that brings atoms closer is halved (the loader rejects < 0.5 Å)
_CELL, _BLOCK, _RECORD = bytes(72), 512, 10240
_KEY_DIGITS = 9  # member names `<index:09d>.msgpack`, as `ShardWriter` writes them


def seed_molecules(min_atoms: int = 5, max_atoms: int = 30) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, atomic numbers (n,), positions (n, 3) Å) of the real molecules copies are made of."""
    from foundation.pipelines.label.structures import read_structures

    seeds, seen = [], set()
    for s in read_structures(EMBEDDED_LABELS):
        if s.molecule in seen or not min_atoms <= len(s.numbers) <= max_atoms:
            continue
        seen.add(s.molecule)
        seeds.append((s.molecule, s.numbers, s.positions))
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    from benchmarks.common import SMILES

    RDLogger.DisableLog("rdApp.*")
    for name, smiles in SMILES.items():
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        if name in seen or not min_atoms <= mol.GetNumAtoms() <= max_atoms or AllChem.EmbedMolecule(mol, randomSeed=0):
            continue
        numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
        seeds.append((name, numbers, mol.GetConformer().GetPositions()))
    too_close = [name for name, _, positions in seeds if _min_distances(positions[None])[0] < _MIN_DISTANCE]
    assert not too_close, f"seed geometries with atoms closer than {_MIN_DISTANCE} Å: {too_close}"
    return seeds


def _rotations(rng: np.random.Generator, m: int) -> np.ndarray:
    """(m, 3, 3) uniformly random rotation matrices (from unit quaternions)."""
    q = rng.normal(size=(m, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1).reshape(m, 3, 3)


def chunk_records(seeds, start: int, count: int, seed: int = 0,
                  cc_every: int = 10) -> list[tuple[bytes, int, bool, int]]:
    """Records of conformations `start`..`start + count` (a pure function of `seed` and the
    chunk, so chunks can be made in any order): (msgpack record, atoms, has a CC label, index of
    its seed molecule) each."""
    rng = np.random.default_rng([seed, start])
    atoms = np.array([len(s[1]) for s in seeds])
    # picked in proportion to size: a mean of ~16 atoms rather than the seeds' plain mean of 13
    which = rng.choice(len(seeds), size=count, p=atoms / atoms.sum())
    sizes = atoms[which]
    numbers = [s[1].astype(np.uint8).tobytes() for s in seeds]
    e_free = np.array([sum(FREE_ATOM_EV[int(z)] for z in s[1]) for s in seeds])
    out: list = [None] * count
    for n in np.unique(sizes):
        rows = np.flatnonzero(sizes == n)
        m = len(rows)
        base = np.stack([seeds[k][2] for k in which[rows]])  # (m, n, 3)
        sigma = rng.uniform(*_SIGMA, size=(m, 1, 1))
        dr = _keep_apart(base, np.clip(rng.normal(size=(m, n, 3)) * sigma, -2.5 * sigma, 2.5 * sigma))
        rot = _rotations(rng, m).transpose(0, 2, 1)  # row vectors: r @ R^T
        positions = np.ascontiguousarray((base + dr) @ rot + rng.uniform(-5, 5, size=(m, 1, 3)), "<f8")
        forces = np.ascontiguousarray(-FORCE_CONSTANT * dr @ rot, "<f8")
        e_dft = e_free[which[rows]] - 2.0 * n + 0.5 * FORCE_CONSTANT * (dr ** 2).sum(axis=(1, 2))
        e_cc = e_dft - 0.05 * n + rng.normal(0, 0.02, m)
        pos_b, frc_b, width = positions.tobytes(), forces.tobytes(), 24 * int(n)
        for j, i in enumerate(rows):
            index, k = start + int(i), int(which[i])
            has_cc = cc_every > 0 and index % cc_every == 0
            energies = {DFT: float(e_dft[j]), CC: float(e_cc[j])} if has_cc else {DFT: float(e_dft[j])}
            record = {"v": VERSION, "numbers": numbers[k],
                      "positions": pos_b[j * width:(j + 1) * width], "cell": _CELL, "pbc": [False, False, False],
                      "energies": energies, "forces": {DFT: frc_b[j * width:(j + 1) * width]},
                      "molecule": seeds[k][0], "source": f"scale:{index}"}
            out[i] = (msgpack.packb(record, use_bin_type=True), int(n), has_cc, k)
    return out


def _min_distances(positions: np.ndarray) -> np.ndarray:
    """(m,) shortest interatomic distance of each of (m, n, 3) geometries."""
    d = np.linalg.norm(positions[:, :, None] - positions[:, None], axis=-1)
    d[:, np.arange(d.shape[1]), np.arange(d.shape[1])] = np.inf
    return d.min(axis=(1, 2))


def _keep_apart(base: np.ndarray, dr: np.ndarray) -> np.ndarray:
    """Halve the rattle `dr` of the geometries whose atoms come closer than _MIN_DISTANCE."""
    bad = np.flatnonzero(_min_distances(base + dr) < _MIN_DISTANCE)
    for _ in range(20):
        if not len(bad):
            return dr
        dr[bad] *= 0.5
        bad = bad[_min_distances(base[bad] + dr[bad]) < _MIN_DISTANCE]
    dr[bad] = 0.0
    return dr


def _header_template() -> np.ndarray:
    info = tarfile.TarInfo("0" * _KEY_DIGITS + "." + MEMBER)
    info.mtime, info.mode, info.uname, info.gname = 0, 0o644, "foundation", "foundation"
    header = np.frombuffer(info.tobuf(tarfile.USTAR_FORMAT), np.uint8).copy()
    header[148:156] = ord(" ")  # the checksum is computed with its own field as spaces
    return header


def _tar_headers(first_key: int, sizes: np.ndarray) -> np.ndarray:
    """(m, 512) ustar headers of members `<first_key + i:09d>.msgpack` of `sizes` bytes."""
    m = len(sizes)
    headers = np.tile(_header_template(), (m, 1))
    names = "".join(f"{first_key + i:0{_KEY_DIGITS}d}" for i in range(m)).encode()
    headers[:, :_KEY_DIGITS] = np.frombuffer(names, np.uint8).reshape(m, _KEY_DIGITS)
    sizes_b = "".join(f"{int(s):011o}" for s in sizes).encode()
    headers[:, 124:135] = np.frombuffer(sizes_b, np.uint8).reshape(m, 11)
    checks = "".join(f"{int(c):06o}" for c in headers.sum(axis=1, dtype=np.int64)).encode()
    headers[:, 148:154] = np.frombuffer(checks, np.uint8).reshape(m, 6)
    headers[:, 154] = 0  # "%06o\0 ", as tarfile writes it
    return headers


def _write_shard(out_dir: Path, name: str, split: str, first_key: int, records: list,
                 seed_elements: list[set[int]]) -> ShardInfo:
    data = [r[0] for r in records]
    sizes = np.array([len(d) for d in data])
    headers = _tar_headers(first_key, sizes)
    pieces = []
    for h, d in zip(headers, data):
        pieces += (h.tobytes(), d, bytes(-len(d) % _BLOCK))
    body = b"".join(pieces) + bytes(2 * _BLOCK)
    body += bytes(-len(body) % _RECORD)
    tmp = out_dir / f".{name}.tmp"
    tmp.write_bytes(body)
    os.replace(tmp, out_dir / name)
    n_cc = sum(r[2] for r in records)
    elements = set().union(*(seed_elements[k] for k in {r[3] for r in records}))
    labels = {label_set([DFT, CC]): n_cc, label_set([DFT]): len(records) - n_cc}
    return ShardInfo(name=name, split=split, sha256=hashlib.sha256(body).hexdigest(), n_samples=len(records),
                     bytes=len(body), n_atoms=sum(r[1] for r in records), elements=sorted(elements),
                     label_sets={k: v for k, v in sorted(labels.items()) if v},
                     fidelities={CC: {"energy": n_cc, "forces": 0},
                                 DFT: {"energy": len(records), "forces": len(records)}})


def write_scale_shards(out_dir: str | os.PathLike, n: int, seed: int = 0, shard_bytes: int = 64 * 2**20,
                       split: str = "train", chunk: int = 20_000) -> list[ShardInfo]:
    """Write `n` conformations as shards of at most `shard_bytes` to `out_dir`, with its
    manifest.json; returns the shards."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = seed_molecules()
    seed_elements = [{int(z) for z in numbers} for _, numbers, _ in seeds]
    shards: list[ShardInfo] = []
    current, size, first_key = [], 0, 0
    for start in range(0, n, chunk):
        for record in chunk_records(seeds, start, min(chunk, n - start), seed):
            member = _BLOCK + len(record[0]) + -len(record[0]) % _BLOCK
            if current and size + member + 2 * _BLOCK + _RECORD > shard_bytes:
                shards.append(_write_shard(out_dir, f"{split}-{len(shards):06d}.tar", split, first_key, current,
                                           seed_elements))
                first_key += len(current)
                current, size = [], 0
            current.append(record)
            size += member
    if current:
        shards.append(_write_shard(out_dir, f"{split}-{len(shards):06d}.tar", split, first_key, current,
                                   seed_elements))
    level = {"method": "synthetic harmonic labels (scale rehearsal)", "basis": "-",
             "program": "benchmarks/scale_data.py"}
    write_manifest(out_dir, shards, levels_of_theory={DFT: level, CC: level},
                   command=f"benchmarks/scale_data.py n={n} seed={seed} shard_bytes={shard_bytes}")
    return shards
