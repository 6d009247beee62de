"""Where training batches come from: one protocol (`protocol.DataModule`, what the trainer needs)
and its sources, each a config dataclass a Hydra `data=` group names and whose `build()` returns a
`DataModule`:

    in_memory   FileDataConfig       users' files held in memory (data=extxyz)
    shards      ShardDataConfig      streamed webdataset shards (data=shards)
    embedded    EmbeddedDataConfig   the shards shipped inside the package (data=embedded)

Import them from `foundation.data`, the package's public face.
"""
