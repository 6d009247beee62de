"""The embedded dataset (`data=embedded`): multi-fidelity shards shipped inside the package, made
by `data_pipelines/embedded/` (wB97X/6-31G* energies and forces, CCSD(T)/cc-pVDZ energies of
small H/C/N/O molecules; test and validation molecules held out whole)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from foundation.data.shards_module import ShardDataConfig

EMBEDDED_DIR = Path(__file__).parent / "embedded"


@dataclasses.dataclass
class EmbeddedDataConfig(ShardDataConfig):
    """`ShardDataConfig` whose `path` defaults to the shards inside the package."""

    path: str | None = str(EMBEDDED_DIR)
