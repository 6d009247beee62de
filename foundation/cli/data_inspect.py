"""`foundation data inspect PATH`: what a shard folder (local or URL) holds.

Counts per split and fidelity, by total charge and spin multiplicity, elements and levels of theory come from the manifest; energy and
force statistics from one pass over the shards; `--png` adds histograms, `--verify` checks every
shard's sha256 against the manifest.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="counts, elements and label statistics of a shard folder",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("path", help="shard folder, manifest.json, or their URL")
    p.add_argument("--png", metavar="OUT.png", help="write energy and force histograms to this PNG")
    p.add_argument("--split", action="append", help="only this split (repeatable; default: all)")
    p.add_argument("--verify", action="store_true", help="also check every shard's sha256")
    p.set_defaults(func=run)


def run(args) -> int:
    from foundation.data.shards.manifest import load_manifest, verify_shards
    from foundation.data.shards.stats import label_statistics, plot_histograms
    from foundation.data.elements import symbol

    manifest = load_manifest(args.path)
    data = manifest.data
    print(f"{manifest.location}: {data['n_samples']} structures in {len(data['shards'])} shards "
          f"(manifest sha256 {manifest.sha256})")
    print(f"  elements: {' '.join(symbol(z) for z in data['elements'])}")
    for split in manifest.splits:
        c = manifest.counts(split)
        print(f"  {split}: {c['n_samples']} structures, {c['n_atoms']} atoms, {c['n_shards']} shards, "
              f"{c['bytes'] / 2**20:.1f} MiB")
        for fid, n in c["fidelities"].items():
            print(f"    {fid}: {n['energy']} energies, {n['forces']} forces")
        print(f"    by charge: {_counts(c['charges'], signed=True)}; by spin multiplicity: "
              f"{_counts(c['multiplicities'])}")
    for fid, level in data.get("levels_of_theory", {}).items():
        described = ", ".join(f"{k} {v}" for k, v in level.items() if k in ("method", "basis", "program"))
        print(f"  level of theory {fid}: {described or 'not recorded'}")
    if args.verify:
        print(f"  sha256 verified for {verify_shards(manifest, args.split)} shards")
    stats = label_statistics(manifest, args.split)
    for fid, by_key in sorted(stats.items()):
        for key, unit in (("energy", "eV"), ("energy_per_atom", "eV/atom"), ("force", "eV/Å |F|"),
                          ("force_component", "eV/Å")):
            s = by_key[key].summary()
            if s["n"]:
                print(f"  {fid} {key:<16} n={s['n']:<9} mean {s['mean']:.6g}  std {s['std']:.4g}  "
                      f"min {s['min']:.6g}  max {s['max']:.6g} {unit}")
    if args.png:
        plot_histograms(stats, args.png)
        print(f"  histograms: {args.png}")
    return 0


def _counts(counts: dict, signed: bool = False) -> str:
    """{"0": 90, "1": 10} as "0: 90, +1: 10"."""
    return ", ".join(f"{int(k):+d}: {n}" if signed and int(k) else f"{k}: {n}" for k, n in counts.items()) or "none"
