"""Build the embedded dataset's shards from the labeller's output.

    foundation data label --plan data_pipelines/embedded/plan.json --out data_pipelines/embedded/labels --workers 2
    python -m foundation.pipelines.embedded.build

The first command labels (hours of CPU, resumable: re-run it to continue); the second turns every
successful label into webdataset shards + manifest.json in `foundation/data/embedded/`, where
`data=embedded` finds them. Splits are the plan's: whole molecules are held out for val and test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from foundation.data.shards.manifest import write_manifest
from foundation.data.shards.writer import write_shards
from foundation.pipelines.label.export import level_metadata, load_samples

HERE = Path(__file__).parent
LABELS = HERE / "labels"
OUT = HERE.parent.parent / "foundation" / "data" / "embedded"
SAMPLES_PER_SHARD = 100  # several shards per split, so ranks x workers each get their own
COMMAND = ("foundation data label --plan data_pipelines/embedded/plan.json --out data_pipelines/embedded/labels "
           "--workers 2 && python -m foundation.pipelines.embedded.build")


def build(labels: Path = LABELS, out: Path = OUT) -> dict:
    splits, stats = load_samples(labels)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shards = []
    for split in sorted(splits):
        shards += write_shards(splits[split], tmp, split, max_samples_per_shard=SAMPLES_PER_SHARD)
    write_manifest(tmp, shards, level_metadata(labels), command=COMMAND,
                   extra={"name": "embedded", "label_stats": stats,
                          "molecules": {s: sorted({x.molecule for x in v}) for s, v in splits.items()}})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the old set stays whole until the new one is complete
    return {s: len(v) for s, v in splits.items()} | {"stats": stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    print(build(args.labels, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
