"""The hub: distributable model files (safetensors, config in the header), the registry of named
models, downloads into a verified cache, and the published ANI models (`ani/`). Import from here;
names load on first use (`foundation.lazy_exports`). To load any model, trained here or
published, use `foundation.load_pretrained`; `load_published` takes distributable files only.

    from foundation.hub import read_header, save_model
    save_model(model, "mine.safetensors", {"license": "MIT"})
"""

from typing import TYPE_CHECKING

from foundation.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from foundation.hub.ani.from_neurochem import import_neurochem, load_neurochem
    from foundation.hub.ani.from_torchani import from_torchani, import_torchani, load_torchani
    from foundation.hub.cache import file_sha256, is_offline
    from foundation.hub.format import load_model_file, read_header, save_model
    from foundation.hub.registry import get_entry, is_registered, load_registry
    from foundation.hub.resolve import load_published

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
