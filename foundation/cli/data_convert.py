"""`foundation data convert INPUT OUT_DIR`: labelled structures → webdataset shards + manifest.

    foundation data convert ani1x-release.h5 shards/ani1x               # ANI HDF5, default key map
    foundation data convert ani1ccx.h5 shards/cc --key-map ccsd(t)_cbs.energy=ccsdt_cbs
    foundation data convert mine.xyz shards/mine --energy-key E --forces-key F --fidelity wb97x_631gs
"""

from __future__ import annotations

import shlex
from pathlib import Path

FORMATS = ("ani-h5", "ase")
_H5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("convert", help="convert ANI HDF5 or ASE-readable files to webdataset shards",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="ANI-layout HDF5 file, or any file ASE reads (extxyz, .db, …)")
    p.add_argument("out_dir", help="folder for the shards and manifest.json (new or empty)")
    p.add_argument("--format", choices=FORMATS, help="default: ani-h5 for .h5/.hdf5, else ase")
    p.add_argument("--energy-key", help="ase: key of the energy (eV) in atoms.info or calculator results")
    p.add_argument("--forces-key", help="ase: key of the forces (eV/Å) in atoms.arrays; omit for energies only")
    p.add_argument("--fidelity", help="ase: which fidelity the labels are, e.g. wb97x_631gs or ccsdt_ccpvdz")
    p.add_argument("--method", help="ase: the labels' method, e.g. 'CCSD(T)', recorded in the manifest")
    p.add_argument("--basis", help="ase: the labels' basis set, recorded in the manifest")
    p.add_argument("--program", help="ase: the program that computed the labels, recorded in the manifest")
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

    fmt = args.format or ("ani-h5" if Path(args.input).suffix.lower() in _H5_SUFFIXES else "ase")
    fractions = parse_fractions(args.split)
    max_bytes = int(args.shard_size_mb * 2**20)
    command = _command(args, fmt)
    if fmt == "ani-h5":
        from foundation.pipelines.convert import ani_h5

        if any((args.energy_key, args.forces_key, args.fidelity, args.method, args.basis, args.program)):
            raise UserError("--energy-key/--forces-key/--fidelity/--method/--basis/--program are for "
                            "--format ase; for HDF5 use --key-map (levels of theory come from its keys)")
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
                               split_by=args.split_by)
    _summary(load_manifest(path.parent), path)
    return 0


def _command(args, fmt: str) -> str:
    """The command as it could be typed again, recorded in the manifest."""
    words = ["foundation", "data", "convert", args.input, args.out_dir, "--format", fmt]
    for flag in ("energy_key", "forces_key", "fidelity", "method", "basis", "program"):
        if getattr(args, flag):
            words += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    if fmt == "ase":
        words += ["--split-by", args.split_by]
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
    if data.get("skipped_samples"):
        print(f"  skipped {data['skipped_samples']} structures that failed validation (see the warnings)")
