"""C kernels built on first use with the system's C compiler and called through ctypes: one way
to build them for every CPU kernel of the models (`csrc/*.c`: the AEV sums, `aev_native`; the
ensemble's activations, `mlp_native`).

Why ctypes and not a torch C++ extension: a C compiler is on almost every Linux and macOS
machine, a C file builds in ~1 s, and nothing has to match torch's headers or ABI. A library is
built per source, constants (compiled in as macros, so loops have fixed trip counts), compiler
and CPU, and cached under `foundation.paths.cache_dir()/kernels`. Where no compiler works, or
with FOUNDATION_NATIVE_KERNELS=0, `library()` returns None and callers use torch operations.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

from torch import Tensor

from foundation.paths import cache_dir

log = logging.getLogger(__name__)

_BASE = ["-O3", "-fPIC", "-shared", "-std=c99"]
# Fastest first: vector math (glibc libmvec) for exp/cos/sin/pow; then without; then plain.
FLAG_SETS = (["-march=native", "-ffast-math", "-fopenmp-simd", "-lmvec", "-lm"],
             ["-march=native", "-ffast-math", "-fopenmp-simd", "-lm"],
             ["-lm"])
_libraries: dict[tuple, ctypes.CDLL | None] = {}
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("FOUNDATION_NATIVE_KERNELS", "1").strip().lower() not in {"0", "false", "no", "off"}


def library(source: str, what: str, defines: dict[str, str], signatures: dict[str, str]) -> ctypes.CDLL | None:
    """The built `csrc/<source>` with `defines`, its functions typed by `signatures` (name ->
    one letter per argument: "i" int64, "p" pointer); None where it cannot be built or kernels
    are switched off (`what` names them in the warning). Built once per process and arguments."""
    if not enabled():
        return None
    key = (source, tuple(sorted(defines.items())), tuple(sorted(signatures.items())))
    if key not in _libraries:
        with _lock:
            if key not in _libraries:
                _libraries[key] = _build(source, what, defines, signatures)
    return _libraries[key]


def call(lib: ctypes.CDLL, name: str, *args: int | Tensor) -> None:
    """`lib.name(*args)`: ints as they are, tensors by their data pointer (contiguous CPU only)."""
    pointers = []
    for a in args:
        if isinstance(a, Tensor):
            if not a.is_contiguous() or a.device.type != "cpu":
                raise ValueError(f"{name}: native kernels take contiguous CPU tensors")
            pointers.append(a.data_ptr())
        else:
            pointers.append(int(a))
    getattr(lib, name)(*pointers)


def _build(source_name: str, what: str, defines: dict[str, str], signatures: dict[str, str]) -> ctypes.CDLL | None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        log.warning("no C compiler found: the %s runs on torch operations (slower on CPU)", what)
        return None
    try:
        source = (resources.files("foundation.models") / "csrc" / source_name).read_text()  # package data
    except OSError as err:
        log.warning("kernel source %s missing (%s): it runs on torch operations", source_name, err)
        return None
    macros = [f"-D{k}={v}" for k, v in sorted(defines.items())]
    if defines.get("REAL") == "float" and "clang" not in Path(compiler).name:
        macros.append("-fsingle-precision-constant")  # keep float kernels in float arithmetic
    directory = cache_dir() / "kernels"
    for flags in FLAG_SETS:
        command = [compiler, *_BASE, *macros, "-x", "c", "-", *flags]
        digest = hashlib.sha256("\0".join([source, *command, _cpu_id(), "link2"]).encode()).hexdigest()[:20]
        path = directory / f"{source_name.removesuffix('.c')}_{digest}.so"
        try:
            if not path.exists():
                _compile(command, source, path)
            return _load(path, signatures)
        except (OSError, subprocess.SubprocessError) as err:
            log.debug("building %s with %s failed: %s", what, flags, err)
    log.warning("could not build the native %s kernels with %s: the %s runs on torch operations", what, compiler, what)
    return None


def _compile(command: list[str], source: str, path: Path) -> None:
    """Compile to an object with every flag, then link it *without* -ffast-math: linking with it
    pulls in crtfastmath.o, which turns off subnormal numbers for the whole process on load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".so.tmp")
    os.close(fd)
    obj = tmp + ".o"
    libs = [f for f in command if f.startswith("-l")]
    compile_only = [f for f in command if f != "-shared" and not f.startswith("-l")]
    try:
        subprocess.run([*compile_only, "-c", "-o", obj], input=source, text=True, capture_output=True,
                       check=True, timeout=120)
        subprocess.run([command[0], "-shared", obj, "-o", tmp, *libs], text=True, capture_output=True,
                       check=True, timeout=120)
        os.replace(tmp, path)  # atomic: another process never loads a half-written library
    finally:
        for leftover in (tmp, obj):
            if os.path.exists(leftover):
                os.unlink(leftover)


def _load(path: Path, signatures: dict[str, str]) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    kinds = {"i": ctypes.c_int64, "p": ctypes.c_void_p}
    for name, letters in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = [kinds[c] for c in letters]
        fn.restype = None
    return lib


def _cpu_id() -> str:
    """-march=native code runs only on CPUs like this one: key the cache by the CPU's flags."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), platform.processor())
    except OSError:
        return platform.machine() + platform.processor()
