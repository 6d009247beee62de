"""The published ANI models (ANI-1x, ANI-1ccx, ANI-2x; MIT, aiqm/ani-model-zoo) as our models:

    manifest        the zoo's manifest (`model_zoo.json`): its files, their sha256, the licence
    zoo             fetching a zoo model's files into the cache and converting them once
    neurochem       the reader of the zoo's "neurochem" files
    from_neurochem  a neurochem model as our `ANI` ensemble / `.safetensors` file
    from_torchani   a TorchANI model (or state dict) as ours
    weights         the ANI weight layout both converters share
"""
