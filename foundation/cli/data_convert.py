"""`foundation data convert INPUT OUT_DIR`: labelled structures → webdataset shards + manifest.

    foundation data convert ani1x-release.h5 shards/ani1x               # ANI HDF5, default key map
    foundation data convert ani1ccx.h5 shards/cc --key-map ccsd(t)_cbs.energy=ccsdt_cbs
    foundation data convert mine.xyz shards/mine --energy-key E --forces-key F --fidelity wb97x_631gs
    foundation data convert mine_au.xyz shards/mine --energy-key E --fidelity dft --energy-unit hartree --length-unit bohr
    foundation data convert SPICE-2.0.1.hdf5 shards/spice --format spice
    foundation data convert omol25/train_4M/ shards/omol25 --format omol25     # a folder of .aselmdb files
    foundation data convert 1000.hdf5 shards/qm7x-1000 --format qm7x
    foundation data convert transition1x.h5 shards/t1x --format t1x

The published datasets are read as their publishers describe them (keys, units, level of theory,
charge and spin): SPICE 2 (hartree, bohr; charge from the SMILES), OMol25 (ASE-LMDB; eV, Å; charge
and spin per structure), QM7-X (eV, Å) and Transition1x (eV, Å; its published split), each
streamed, never loaded whole. See docs/data.md.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from foundation.cli.units import add_unit_arguments

FORMATS = ("ani-h5", "ase", "spice", "omol25", "qm7x", "t1x")
# The published datasets' readers: module and function under foundation.pipelines.convert
PUBLISHED = {"spice": ("spice", "convert_spice"), "omol25": ("omol25", "convert_omol25"),
             "qm7x": ("qm7x", "convert_qm7x"), "t1x": ("t1x", "convert_t1x")}
_H5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("convert", help="convert ANI HDF5, SPICE, OMol25, QM7-X, Transition1x or "
                                              "ASE-readable files to webdataset shards",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="ANI-layout HDF5 file, a published dataset's file (see --format), or any file "
                                 "ASE reads (extxyz, .db, …)")
    p.add_argument("out_dir", help="folder for the shards and manifest.json (new or empty)")
    p.add_argument("--format", choices=FORMATS, help="default: ani-h5 for .h5/.hdf5, omol25 for .aselmdb, else ase; "
                                                     "spice, qm7x and t1x must be named")
    p.add_argument("--energy-key", help="ase: key of the energy (eV) in atoms.info or calculator results")
    p.add_argument("--forces-key", help="ase: key of the forces (eV/Å) in atoms.arrays; omit for energies only")
    p.add_argument("--fidelity", help="ase: which fidelity the labels are, e.g. wb97x_631gs or ccsdt_ccpvdz")
    p.add_argument("--method", help="ase: the labels' method, e.g. 'CCSD(T)', recorded in the manifest")
    p.add_argument("--basis", help="ase: the labels' basis set, recorded in the manifest")
    p.add_argument("--program", help="ase: the program that computed the labels, recorded in the manifest")
    add_unit_arguments(p)
    p.add_argument("--split-by", choices=("molecule", "conformer"), default="molecule",
                   help="ase: keep each molecule in one split (default), or split conformers")
    p.add_argument("--key-map", nargs="+", metavar="H5KEY=FIDELITY",
                   help="ani-h5: which datasets to keep and their fidelities (default: "
                        "wb97x_dz.energy=wb97x_631gs wb97x_dz.forces=wb97x_631gs ccsd(t)_cbs.energy=ccsdt_cbs)")
    p.add_argument("--split", default="train=0.8,val=0.1,test=0.1", help="split fractions (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of the shard order (default 0)")
    p.add_argument("--shard-size-mb", type=float, default=64.0, help="largest shard size in MiB (default 64)")
    p.set_defaults(func=run)


def run(args) -> int:
    from foundation.data.shards.manifest import load_manifest
    from foundation.errors import UserError
    from foundation.pipelines.convert.common import parse_fractions
    from foundation.progress import progress_bar

    fmt = args.format or _default_format(args.input)
    fractions = parse_fractions(args.split)
    max_bytes = int(args.shard_size_mb * 2**20)
    command = _command(args, fmt)
    if fmt in PUBLISHED:
        path = _convert_published(args, fmt, fractions, max_bytes, command)
    elif fmt == "ani-h5":
        from foundation.pipelines.convert import ani_h5

        if any((args.energy_key, args.forces_key, args.fidelity, args.method, args.basis, args.program)):
            raise UserError("--energy-key/--forces-key/--fidelity/--method/--basis/--program are for "
                            "--format ase; for HDF5 use --key-map (levels of theory come from its keys)")
        from foundation.pipelines.convert.grouped import fixed_units

        fixed_units(fmt, args.energy_unit, args.length_unit)  # ANI HDF5 is hartree by its description
        key_map = ani_h5.parse_key_map(args.key_map) if args.key_map else dict(ani_h5.DEFAULT_KEY_MAP)
        total = sum(ani_h5.scan(args.input, key_map).values())
        with progress_bar(total=total, unit="conf", desc="convert") as bar:
            path = ani_h5.convert_ani_h5(args.input, args.out_dir, key_map, fractions, args.seed, max_bytes,
                                         command=command, progress=bar.update)
    else:
        from foundation.pipelines.convert.ase_files import convert_ase

        if args.key_map:
            raise UserError("--key-map is for --format ani-h5; for ASE files use --energy-key/--forces-key")
        if not args.energy_key or not args.fidelity:
            raise UserError(f"{args.input}: --energy-key and --fidelity are required for ASE-readable files")
        level = {k: v for k, v in (("method", args.method), ("basis", args.basis), ("program", args.program)) if v}
        with progress_bar(unit="conf", desc="convert") as bar:
            path = convert_ase(args.input, args.out_dir, args.energy_key, args.fidelity, args.forces_key,
                               fractions, args.seed, max_bytes, level, command, bar.update,
                               split_by=args.split_by, energy_unit=args.energy_unit, length_unit=args.length_unit)
    _summary(load_manifest(path.parent), path)
    return 0


def _default_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in _H5_SUFFIXES:
        return "ani-h5"
    if suffix == ".aselmdb" or (Path(path).is_dir() and any(Path(path).glob("*.aselmdb"))):
        return "omol25"
    return "ase"


def _convert_published(args, fmt: str, fractions, max_bytes: int, command: str):
    """SPICE, OMol25, QM7-X or Transition1x: keys, units and level of theory are the format's."""
    import importlib

    from foundation.errors import UserError
    from foundation.pipelines.convert.grouped import fixed_units
    from foundation.progress import progress_bar

    given = [f"--{k.replace('_', '-')}" for k in ("energy_key", "forces_key", "fidelity", "method", "basis",
                                                  "program", "key_map") if getattr(args, k)]
    if given:
        raise UserError(f"{' '.join(given)}: --format {fmt} reads the keys and level of theory its publishers "
                        "describe; these options are for --format ase and ani-h5")
    fixed_units(fmt, args.energy_unit, args.length_unit)
    module, function = PUBLISHED[fmt]
    convert = getattr(importlib.import_module(f"foundation.pipelines.convert.{module}"), function)
    with progress_bar(unit="conf", desc="convert") as bar:
        return convert(args.input, args.out_dir, fractions, args.seed, max_bytes, command, bar.update)


def _command(args, fmt: str) -> str:
    """The command as it could be typed again, recorded in the manifest."""
    words = ["foundation", "data", "convert", args.input, args.out_dir, "--format", fmt]
    for flag in ("energy_key", "forces_key", "fidelity", "method", "basis", "program"):
        if getattr(args, flag):
            words += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    if fmt == "ase":
        words += ["--split-by", args.split_by]
        if args.energy_unit:
            words += ["--energy-unit", args.energy_unit]
        if args.length_unit != "angstrom":
            words += ["--length-unit", args.length_unit]
    if args.key_map:
        words += ["--key-map", *args.key_map]
    words += ["--split", args.split, "--seed", str(args.seed), "--shard-size-mb", f"{args.shard_size_mb:g}"]
    return " ".join(shlex.quote(w) for w in words)


def _summary(manifest, path) -> None:
    data = manifest.data
    print(f"wrote {len(data['shards'])} shards and {path} (sha256 {manifest.sha256[:16]}…)")
    for split in manifest.splits:
        counts = manifest.counts(split)
        labels = ", ".join(f"{fid} {c['energy']} E / {c['forces']} F" for fid, c in counts["fidelities"].items())
        print(f"  {split}: {counts['n_samples']} structures in {counts['n_shards']} shards ({labels})")
    charges, multiplicities = manifest.states()
    if (charges, multiplicities) != ([0], [1]):
        print(f"  charges {', '.join(f'{c:+d}' for c in charges)}; spin multiplicities "
              f"{', '.join(map(str, multiplicities))}")
    if data.get("skipped_samples"):
        print(f"  skipped {data['skipped_samples']} structures that failed validation (see the warnings)")
