"""The published ANI ensembles (github.com/aiqm/ani-model-zoo, MIT, copyright 2020 AIQM), fetched
file by file from their commit-pinned URLs, verified, converted once and cached as one
`.safetensors` file.

What is fetched, from where, and what is verified against: `foundation.hub.ani.manifest`.

Each file goes through `foundation.hub.download` (resumable, verified, an HTML page refused); the
converted model is written atomically to `<cache>/ani-model-zoo/<commit[:12]>/<model>.safetensors`
only once every file has been verified and converted, so a bad answer leaves no model in the
cache. The downloaded sources are deleted after a conversion (the converted file is what is used);
after a failure the verified ones stay, so the next call fetches only what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from foundation.errors import UserError
from foundation.hub.ani.manifest import file_url, load_manifest, model_files
from foundation.hub.cache import is_offline
from foundation.hub.download import download, safetensors_problem
from foundation.paths import cache_dir


def cached_model(model: str, manifest: Mapping | None = None) -> Path:
    """Where the converted `model` is (or will be) cached."""
    manifest = manifest or load_manifest()
    return cache_dir() / "ani-model-zoo" / manifest["commit"][:12] / f"{model}.safetensors"


def fetch(model: str, *, refresh: bool = False, progress: bool = True) -> Path:
    """The cached, converted `model` (e.g. "ani-2x_8x"), downloading and converting it when it is
    not cached or `refresh` asks to rebuild it from the published files."""
    manifest = load_manifest()
    target = cached_model(model, manifest)
    if not refresh and target.is_file() and safetensors_problem(target) is None:
        return target
    paths = model_files(manifest, model)
    if is_offline():
        raise UserError(f"{model}: not in the cache ({target}) and FOUNDATION_OFFLINE=1 forbids downloading "
                        "it; run `foundation hub download` for it once with network access")
    local = _download_all(manifest, paths, progress)
    _convert(manifest, model, local, target)
    for path in local.values():  # the converted file is what is used from now on
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
        _remove_empty(path.parent)
    return target


def _download_all(manifest: Mapping, paths: list[str], progress: bool) -> dict[str, Path]:
    from foundation.progress import progress_bar

    local = {}
    with progress_bar(total=len(paths), unit="file", desc="ani-model-zoo", enabled=progress) as bar:
        for path in paths:
            entry = manifest["files"][path]
            local[path] = download(file_url(manifest, path), entry["sha256"], entry["size"], progress=False)
            bar.update(1)
    return local


def _convert(manifest: Mapping, model: str, local: Mapping[str, Path], target: Path) -> None:
    from foundation.hub.format import save_model
    from foundation.hub.ani.from_neurochem import convert  # lazy: the converter pulls in the models

    def read(rel: str) -> bytes:
        key = f"resources/{rel}"
        if key not in local:
            raise UserError(f"{model}: the model names {rel}, which its manifest does not list")
        return local[key].read_bytes()

    converted, metadata = convert(read, f"{model}.info", where=file_url(manifest, f"resources/{model}.info"),
                                  manifest=manifest)
    if metadata.get("license_text") is not None:
        metadata["license_text"] = local["LICENSE"].read_text(encoding="utf-8")  # the file just verified
    save_model(converted, target, metadata=metadata)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (another file shares the content-addressed folder) or gone
        pass
