"""Reader of the "neurochem" files that define the published ANI ensembles (ANI-1x, ANI-1ccx,
ANI-2x; github.com/aiqm/ani-model-zoo), the C++ NeuroChem trainer's format. No TorchANI needed.

A model is described by its `.info` file, four lines with paths relative to the folder of the
`.info` file:

    ani-1x_8x/rHCNO-5.2R_16-3.5A_a4-8.params     AEV constants ("Rcr = 5.2", "ShfR = [0.9,...]", "Atyp = [H,C,N,O]")
    ani-1x_8x/sae_linfit.dat                     self energies, Hartree ("H,0=-0.6009...")
    ani-1x_8x/train                              member k lives in <prefix><k>/networks/
    8                                            number of members

Each member has one `ANN-<element>.nnf` per element: the text "<n>=\\n" followed by a bz2 stream
of n bytes of text, `inputsize=384; atom_net H $ layer [ nodes=160; activation=9; blocksize=384;
... weights=FILE:ANN-H.nnf-l1.wparam[61440]; biases=FILE:ANN-H.nnf-l1.bparam[160]; ] ... $`. The
layer files are raw little-endian float32: weights (nodes, blocksize) row-major, biases (nodes).
Activation codes: 9 = CELU(alpha=0.1) on every hidden layer, 6 = identity on the output layer.
"""

from __future__ import annotations

import bz2
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from foundation.errors import UserError

CELU, IDENTITY = 9, 6  # NeuroChem activation codes (cuannlayer_t.cu); the only two ANI-1x/2x use
ReadBytes = Callable[[str], bytes]  # relative path (to the .info file's folder) -> file content


@dataclasses.dataclass
class Layer:
    nodes: int
    inputs: int
    activation: int
    weights: np.ndarray  # (nodes, inputs) float32
    biases: np.ndarray  # (nodes,) float32


@dataclasses.dataclass
class NeurochemModel:
    """What the files say: AEV constants, self energies (Hartree), and per member per element the
    layers (output layer last)."""

    symbols: list[str]
    aev: dict[str, float | list[float]]  # Rcr, Rca, EtaR, ShfR, Zeta, ShfZ, EtaA, ShfA
    self_energies: dict[str, float]
    members: list[dict[str, list[Layer]]]
    member_indices: list[int]
    files: list[str]  # every file read, relative to the .info file's folder


def directory_reader(root: str | os.PathLike) -> ReadBytes:
    """Read files below `root`, refusing paths that leave it (the .info file names them)."""
    root = Path(root).resolve()

    def read(rel: str) -> bytes:
        path = (root / rel).resolve()
        if root not in path.parents:
            raise UserError(f"{root}: the model files name {rel!r}, which is outside this folder")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"{path}: missing; a neurochem model needs every file its .info names") from None
    return read


def find_info(path: str | os.PathLike) -> Path:
    """The `.info` file of `path`: the file itself, or the one a model folder `<name>/` has beside
    it (`<name>.info`) or inside it (exactly one `*.info`)."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".info":
            raise UserError(f"{path}: not a neurochem .info file (give the .info file or the model folder)")
        return path
    if path.is_dir():
        beside = path.with_name(path.name + ".info")
        inside = sorted(path.glob("*.info"))
        if beside.is_file():
            return beside
        if len(inside) == 1:
            return inside[0]
        raise UserError(f"{path}: no {beside.name} beside this folder and not exactly one .info file in it")
    raise UserError(f"{path}: no such neurochem .info file or model folder")


def read_model(read: ReadBytes, info: str, member: int | None = None) -> NeurochemModel:
    """Parse the model whose `.info` file is `info` (a path for `read`); `member` picks one
    network set (default: all)."""
    const, sae, prefix, size = parse_info(_text(read, info), info)
    aev, symbols = parse_params(_text(read, const), const)
    energies = parse_sae(_text(read, sae), sae)
    missing = [s for s in symbols if s not in energies]
    if missing:
        raise UserError(f"{sae}: no self energy for {', '.join(missing)} (the AEV file lists {symbols})")
    if member is not None and not 0 <= member < size:
        raise UserError(f"{info}: member {member} does not exist; this ensemble has members 0 to {size - 1}")
    indices = [member] if member is not None else list(range(size))
    files = [info, const, sae]
    members = [{s: _network(read, f"{prefix}{k}/networks/ANN-{s}.nnf", s, files) for s in symbols}
               for k in indices]
    return NeurochemModel(symbols, aev, {s: energies[s] for s in symbols}, members, indices, files)


def parse_info(text: str, where: str) -> tuple[str, str, str, int]:
    """(AEV constants file, self-energy file, member prefix, member count), paths relative to the
    .info file's folder."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 4 or not lines[3].isdigit() or int(lines[3]) < 1:
        raise UserError(f"{where}: a neurochem .info file has 4 lines: AEV constants file, self-energy "
                        "file, member prefix, member count")
    return lines[0], lines[1], lines[2], int(lines[3])


_PARAM_KEYS = {"Rcr", "Rca", "EtaR", "ShfR", "Zeta", "ShfZ", "EtaA", "ShfA"}


def parse_params(text: str, where: str) -> tuple[dict[str, float | list[float]], list[str]]:
    """AEV constants (cutoffs Å, etas Å^-2, shifts Å, sections rad) and the element order."""
    values: dict[str, float | list[float]] = {}
    symbols = None
    for line in text.splitlines():
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep:
            continue
        items = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if key == "Atyp":
            symbols = items
        elif key in _PARAM_KEYS:
            try:
                numbers = [float(v) for v in items]
            except ValueError:
                raise UserError(f"{where}: {key} = {value!r} is not a list of numbers") from None
            values[key] = numbers if key.startswith("Shf") else _single(numbers, key, where)
    absent = sorted(_PARAM_KEYS - set(values)) + ([] if symbols else ["Atyp"])
    if absent:
        raise UserError(f"{where}: AEV constants file without {', '.join(absent)}")
    return values, symbols


def parse_sae(text: str, where: str) -> dict[str, float]:
    """Self energies {symbol: Hartree} from lines `H,0=-0.600952980000`."""
    found = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Z][a-z]?)\s*,\s*\d+\s*=\s*(\S+)\s*$", line)
        if m:
            found[m.group(1)] = float(m.group(2))
        elif line.strip():
            raise UserError(f"{where}: cannot read line {line.strip()!r} (expected 'H,0=-0.6009')")
    return found


def parse_nnf(data: bytes, where: str) -> tuple[int, str, list[dict[str, str]]]:
    """(input size, element, [layer fields]) of a compressed `.nnf` file."""
    size, sep, stream = data.partition(b"=")
    try:
        text = bz2.decompress(stream.lstrip(b"\r\n")).rstrip(b"\0").decode("ascii")
    except (OSError, ValueError, UnicodeDecodeError):
        raise UserError(f"{where}: not a neurochem network file (no bz2 text after '<size>=')") from None
    if not sep or not size.strip().isdigit():
        raise UserError(f"{where}: not a neurochem network file (no '<size>=' header)")
    head = re.search(r"inputsize\s*=\s*(\d+)\s*;\s*atom_net\s+(\w+)\s*\$", text)
    blocks = re.findall(r"layer\s*\[(.*?)\]\s*(?=layer|\$)", text, flags=re.S)
    if head is None or not blocks:
        raise UserError(f"{where}: network text without 'inputsize=...; atom_net X $' or layers")
    layers = [dict(re.findall(r"(\w+)\s*=\s*([^;]*);", b)) for b in blocks]
    return int(head.group(1)), head.group(2), layers


def _network(read: ReadBytes, rel: str, symbol: str, files: list[str]) -> list[Layer]:
    inputs, element, fields = parse_nnf(read(rel), rel)
    files.append(rel)
    if element != symbol:
        raise UserError(f"{rel}: a network for {element}, expected {symbol}")
    folder = rel.rpartition("/")[0]
    layers = []
    for k, f in enumerate(fields, 1):
        where = f"{rel} layer {k}"
        nodes, width, activation = (_int(f, name, where) for name in ("nodes", "blocksize", "activation"))
        if width != inputs:
            raise UserError(f"{where}: takes {width} inputs, the previous layer gives {inputs}")
        weights = _floats(read, folder, f.get("weights", ""), nodes * width, where, files).reshape(nodes, width)
        biases = _floats(read, folder, f.get("biases", ""), nodes, where, files)
        layers.append(Layer(nodes, width, activation, weights, biases))
        inputs = nodes
    _check_activations(layers, rel)
    return layers


def _check_activations(layers: list[Layer], where: str) -> None:
    hidden = {layer.activation for layer in layers[:-1]}
    if hidden - {CELU} or layers[-1].activation != IDENTITY or layers[-1].nodes != 1:
        codes = [layer.activation for layer in layers]
        raise UserError(f"{where}: activations {codes} and {layers[-1].nodes} outputs; only ANI-1x/2x-style "
                        f"networks convert (CELU = {CELU} on hidden layers, identity = {IDENTITY} on one output)")


def _floats(read: ReadBytes, folder: str, spec: str, count: int, where: str, files: list[str]) -> np.ndarray:
    m = re.match(r"^FILE:([\w.+-]+)\[(\d+)\]$", spec.strip())
    if m is None:
        raise UserError(f"{where}: parameters {spec!r} are not 'FILE:<name>[<count>]'")
    name, declared = m.group(1), int(m.group(2))
    rel = f"{folder}/{name}" if folder else name
    data = read(rel)
    files.append(rel)
    if declared != count or len(data) != 4 * count:
        raise UserError(f"{rel}: {len(data)} bytes, {declared} declared; the layer needs {count} float32 values")
    return np.frombuffer(data, dtype="<f4").copy()


def _text(read: ReadBytes, rel: str) -> str:
    try:
        return read(rel).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{rel}: not a text file") from None


def _single(numbers: list[float], key: str, where: str) -> float:
    if len(numbers) != 1:
        raise UserError(f"{where}: {key} has {len(numbers)} values; ANI uses one")
    return numbers[0]


def _int(fields: Mapping[str, str], name: str, where: str) -> int:
    value = fields.get(name, "").strip()
    if not value.lstrip("-").isdigit():
        raise UserError(f"{where}: no integer {name} (got {value!r})")
    return int(value)
