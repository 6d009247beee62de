"""Data: the sample schema, batches, users' files, the shard format, streaming, and the sources a
training run takes its batches from (`sources/`). Import from here; the modules are the
package's inside. Names load on first use (`foundation.lazy_exports`), so importing this costs
nothing.

    from foundation.data import FileDataConfig, read_samples
    data = FileDataConfig(path="mine.xyz", energy_key="E", fidelity="ccsdt_ccpvdz").build()
"""

from typing import TYPE_CHECKING

from foundation.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from foundation.data.ase_io import read_samples, write_extxyz
    from foundation.data.batch import AtomsBatch, collate
    from foundation.data.sample import Sample
    from foundation.data.shards.manifest import Manifest, load_manifest, verify_shards, write_manifest
    from foundation.data.shards.reader import iter_samples
    from foundation.data.shards.writer import ShardWriter, write_shards
    from foundation.data.sources.embedded import EMBEDDED_DIR, EmbeddedDataConfig
    from foundation.data.sources.in_memory import FileDataConfig
    from foundation.data.sources.protocol import BatchStream, DataModule
    from foundation.data.sources.shards import ShardDataConfig
    from foundation.data.split import split_by_conformer, split_by_molecule
    from foundation.data.stream import ShardStream

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
