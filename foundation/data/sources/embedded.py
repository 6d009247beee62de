"""The embedded dataset (`data=embedded`): multi-fidelity shards shipped inside the package, made
by `foundation.pipelines.embedded` (data_pipelines/embedded/) (wB97X/6-31G* energies and forces, CCSD(T)/cc-pVDZ energies of
small H/C/N/O molecules; test and validation molecules held out whole)."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

from foundation.data.sources.shards import ShardDataConfig

# Package data installed as files (wheel or editable), so a real folder.
EMBEDDED_DIR = Path(str(resources.files("foundation.data") / "embedded"))


@dataclasses.dataclass
class EmbeddedDataConfig(ShardDataConfig):
    """`ShardDataConfig` whose `path` defaults to the shards inside the package."""

    path: str | None = str(EMBEDDED_DIR)
