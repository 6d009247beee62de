"""Build the embedded dataset's shards from the labeller's output.

    foundation data label --plan data_pipelines/embedded/plan.json --out data_pipelines/embedded/labels --workers 2
    foundation data label --out data_pipelines/cc_set/labels --workers 2     # the CC set (see cc_set/)
    foundation data label --out data_pipelines/mp2_set/labels --workers 2    # the MP2 rung (see mp2_set/)
    foundation data label --out data_pipelines/thermal/cc/labels --workers 2  # thermal conformers (see thermal/)
    foundation data label --out data_pipelines/thermal/mp2/labels --workers 2
    foundation data label --out data_pipelines/thermal/mp2cc/labels --workers 2
    foundation data label --out data_pipelines/small_val/labels --workers 2  # more small validation molecules
    foundation data label --out data_pipelines/frontier/labels --workers 2   # frontier_val/frontier_test
    python -m foundation.pipelines.embedded.build

The label commands run for hours (resumable: re-run one to continue); the build turns every
successful label of every label folder into webdataset shards + manifest.json in
`foundation/data/embedded/`, where `data=embedded` finds them. Splits are the plans': whole
molecules are held out for val and test. A label folder still being filled contributes what it has
(its round-robin order keeps a partial set balanced); the manifest counts what came from where.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from foundation.errors import entry_point
from foundation.data import write_manifest, write_shards
from foundation.pipelines.label.export import level_metadata, load_samples, merge_methods

HERE = Path(__file__).parent
# The frontier's splits (frontier_val, frontier_test) are named apart from train/val/test, so no
# training reads them; they ship so an installed wheel can score on them.
FOLDERS = ("embedded", "cc_set", "mp2_set", "thermal/cc", "thermal/mp2", "thermal/mp2cc", "thermal/rings", "small_val", "frontier")
LABELS = tuple(HERE.parent / f / "labels" for f in FOLDERS)
OUT = HERE.parent.parent / "foundation" / "data" / "embedded"
SAMPLES_PER_SHARD = 100  # several shards per split, so ranks x workers each get their own
COMMAND = " && ".join(
    ["foundation data label --plan data_pipelines/embedded/plan.json --out data_pipelines/embedded/labels --workers 2",
     *(f"foundation data label --out data_pipelines/{f}/labels --workers 2" for f in FOLDERS[1:]),
     "python -m foundation.pipelines.embedded.build"])


def build(labels=LABELS, out: Path = OUT) -> dict:
    splits, stats, metadata, sources = _load(labels)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shards = []
    for split in sorted(splits):
        shards += write_shards(splits[split], tmp, split, max_samples_per_shard=SAMPLES_PER_SHARD)
    write_manifest(tmp, shards, metadata, command=COMMAND,
                   extra={"name": "embedded", "label_stats": stats, "label_folders": sources,
                          "molecules": {s: sorted({x.molecule for x in v}) for s, v in splits.items()}})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the old set stays whole until the new one is complete
    return {s: len(v) for s, v in splits.items()} | {"stats": stats}


def _load(folders) -> tuple[dict, dict, dict, dict]:
    """Samples by split, label counts, level metadata and per-folder counts over all `folders`."""
    splits: dict[str, list] = {}
    stats: dict[str, int] = {}
    metadata: dict[str, dict] = {}
    sources = {}
    for folder in folders:
        got, counts = load_samples(folder)
        for split, samples in got.items():
            splits.setdefault(split, []).extend(samples)
        for key, n in counts.items():
            stats[key] = stats.get(key, 0) + n
        for fid, meta in level_metadata(folder).items():  # every method that made a fidelity is named
            have = metadata.setdefault(fid, dict(meta))
            have["method"] = merge_methods(have["method"], meta["method"])
        sources[os.path.relpath(folder, HERE.parent)] = {s: len(v) for s, v in got.items()}
    return splits, stats, metadata, sources


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, nargs="+", default=list(LABELS), help="labeller output folders")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    print(build(args.labels, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
