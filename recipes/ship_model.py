"""Make the shipped model `ani-cc-mini`: pretrain on the embedded DFT data, transfer to the
embedded CC data, and install the result in the package with its sha256 in the registry.

    python -m foundation.recipes.ship_model [--recipe finetune] [--out runs/ship]

The file and its registry entry are replaced atomically; `foundation hub info ani-cc-mini`
shows the header (training command, data manifest hash, metrics)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import foundation.hub
from foundation.hub.cache import file_sha256
from foundation.recipes.common import train, write_atomic

NAME = "ani-cc-mini"
HUB = Path(foundation.hub.__file__).parent  # the source tree in an editable install


def install(model_path: Path, name: str = NAME, hub: Path = HUB) -> dict:
    """Copy `model_path` into the package and record its sha256 and size in the registry."""
    target = hub / "weights" / f"{name}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    shutil.copyfile(model_path, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    registry_path = hub / "registry.json"
    registry = json.loads(registry_path.read_text())
    entry = registry["models"][name]
    entry.update(sha256=file_sha256(target), size=target.stat().st_size)
    write_atomic(registry_path, json.dumps(registry, indent=2) + "\n")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="finetune", help="the transfer recipe (finetune, multihead)")
    parser.add_argument("--out", type=Path, default=Path("runs/ship"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both stages")
    args = parser.parse_args(argv)
    base = [f"out_dir={args.out}", "logger.progress_bar=false", *args.overrides]
    pretrained = train("pretrain", base + ["name=pretrain"])
    tuned = train(args.recipe, base + [f"name={args.recipe}", f"trainer.init_from={pretrained.model_path}"])
    entry = install(Path(tuned.model_path))
    print(f"installed {NAME}: {entry['size']} bytes, sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
