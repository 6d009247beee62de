"""The front door to a model: a local file or run directory, a registry name, an `https://` URL
or `hf://org/repo[@revision]/path/in/repo`, resolved to a verified local file and loaded.

Remote files are only ever read as `.safetensors` (never a pickle), after their sha256 (when
known) or at least their safetensors header has been checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from foundation.errors import CheckpointError, UserError
from foundation.hub.ani import zoo as ani_zoo
from foundation.hub.cache import cache_dir, file_sha256, is_offline
from foundation.hub.download import download, safetensors_problem
from foundation.hub.registry import RegistryEntry, get_entry, is_registered

REMOTE_PREFIXES = ("http://", "https://", "hf://")


def is_remote(name: str) -> bool:
    return str(name).startswith(REMOTE_PREFIXES)


def is_remote_or_registered(name_or_path: str | os.PathLike) -> bool:
    """True for what `load_pretrained` must fetch: a URL, or a registry name that is not a local path."""
    text = str(name_or_path)
    return is_remote(text) or (not Path(text).expanduser().exists() and is_registered(text))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"`: the GPU when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve(name_or_url: str | os.PathLike, *, progress: bool = True,
            force: bool = False) -> tuple[Path, RegistryEntry | None]:
    """(local file, registry entry or None) for a path, URL, `hf://` path or registry name."""
    text = str(name_or_url)
    if text.startswith(("http://", "https://")):
        return download(text, progress=progress, force=force), None
    if text.startswith("hf://"):
        return hf_download(text, force=force), None
    local = Path(text).expanduser()
    if local.exists():
        return local, None
    entry = get_entry(text)
    return fetch_entry(entry, progress=progress, force=force), entry


def fetch_entry(entry: RegistryEntry, *, progress: bool = True, force: bool = False) -> Path:
    """The verified local file of a registry entry: the shipped copy, else the cached download.
    `force` downloads again; for a model of the ANI zoo it rebuilds the conversion from the
    published files even when a copy is shipped."""
    if entry.shipped and not (force and entry.neurochem):
        if entry.sha256 and file_sha256(entry.path) != entry.sha256:
            if entry.neurochem and ani_zoo.cached_model(entry.neurochem).is_file():
                return ani_zoo.fetch(entry.neurochem, progress=progress)  # rebuilt by an earlier --refresh
            hint = f" or rebuild it: foundation hub download {entry.name} --refresh" if entry.neurochem else ""
            raise CheckpointError(f"{entry.path}: the installed file of model {entry.name!r} does not match "
                                  f"its registry sha256; reinstall foundation{hint}")
        return entry.path
    if entry.neurochem:
        return ani_zoo.fetch(entry.neurochem, refresh=force, progress=progress)
    if entry.url is None:
        raise UserError(f"model {entry.name!r}: its file {entry.path} is not installed and the registry "
                        f"({entry.source}) gives no url to download it from")
    if entry.url.startswith("hf://"):
        return hf_download(entry.url, sha256=entry.sha256, force=force)
    return download(entry.url, entry.sha256, entry.size, progress=progress, force=force)


def load_published(name_or_path: str | os.PathLike, device: str | torch.device = "auto"):
    """A distributable model: a registry name, a URL, an `hf://` path or a `.safetensors` file; in
    eval mode on `device` ("auto": GPU if any). Run directories and training checkpoints are the
    trainer's: `foundation.load_pretrained` (foundation.loading), the one public loader, reads
    those too and calls this for the rest."""
    from foundation.hub.format import load_model_file

    device = resolve_device(device)
    path, entry = resolve(str(name_or_path))
    model = load_model_file(path, device)
    if entry is not None and entry.default_head in model.heads:
        model.default_head = entry.default_head
    return model


def parse_hf_url(url: str) -> tuple[str, str | None, str]:
    """`hf://org/repo[@revision]/path/in/repo` -> (repo_id, revision, filename)."""
    parts = url[len("hf://"):].split("/")
    if len(parts) < 3 or not all(parts):
        raise UserError(f"{url!r}: an hf:// path is hf://ORG/REPO[@REVISION]/PATH/TO/FILE.safetensors")
    repo, _, revision = parts[1].partition("@")
    return f"{parts[0]}/{repo}", revision or None, "/".join(parts[2:])


def hf_download(url: str, sha256: str | None = None, force: bool = False) -> Path:
    """Fetch through `huggingface_hub` into `<cache>/hf` (its token, mirrors and offline rules apply)."""
    repo_id, revision, filename = parse_hf_url(url)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub import errors as hf
    except ImportError:
        raise UserError(f"{url}: hf:// paths need huggingface_hub (pip install 'foundation-mlip[hub]')") from None
    offline = is_offline()
    try:
        path = Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir() / "hf",
                                    local_files_only=offline, force_download=force and not offline))
    except hf.GatedRepoError:
        raise UserError(f"{url}: {repo_id} is gated; accept its terms on https://huggingface.co/{repo_id} "
                        "and log in (`hf auth login` or HF_TOKEN)") from None
    except hf.RepositoryNotFoundError:
        raise UserError(f"{url}: no repository {repo_id} on the Hugging Face Hub (or it is private: log in)") from None
    except hf.RevisionNotFoundError:
        raise UserError(f"{url}: {repo_id} has no revision {revision!r}") from None
    except hf.LocalEntryNotFoundError as e:
        if offline:
            raise UserError(f"{url}: not in the cache ({cache_dir() / 'hf'}) and FOUNDATION_OFFLINE=1 "
                            "forbids downloading it; download it once with network access") from None
        raise UserError(f"{url}: not cached and the Hugging Face Hub cannot be reached "
                        f"({str(e).splitlines()[0]})") from None
    except hf.EntryNotFoundError:
        raise UserError(f"{url}: {repo_id} has no file {filename!r}") from None
    except (hf.HfHubHTTPError, OSError) as e:
        raise UserError(f"{url}: download failed ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    _check_hf_file(url, path, sha256)
    return path


def _check_hf_file(url: str, path: Path, sha256: str | None) -> None:
    problem = None
    if sha256 and (actual := file_sha256(path)) != sha256:
        problem = f"sha256 mismatch: expected {sha256}, got {actual}"
    elif not sha256:
        problem = safetensors_problem(path)
    if problem:
        blob = path.resolve()  # the hub's cache keeps the bytes in a blob the path links to
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise CheckpointError(f"{url}: {problem}; the downloaded file was deleted")
