"""The source checkpoint: find or download it, and check it before any work.

SOURCE is a local Hugging Face checkpoint directory, a registry name (``magistral-small-2509``,
aliases too) or a hub id.  Hub sources are fetched with `huggingface_hub.snapshot_download`
restricted to the registry entry's ``allow_patterns`` (never ``consolidated.safetensors``).

What magimac adds over mlx-vlm/mlx-lm's loaders: every problem is found up front and reported
as one line naming the file: missing or malformed ``config.json``, an unknown architecture, no
tokenizer, a malformed index, and truncated or corrupt safetensors (checked from each file's
header against its size, without reading the tensor data).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from magimac.core.errors import MagimacError, one_line
from magimac.quantize.layout import UnknownArchitecture, architecture
from magimac.quantize.tokenizer import files_to_copy

# Hub files a conversion needs when SOURCE is a hub id without a registry entry.
DEFAULT_ALLOW_PATTERNS = ["config.json", "generation_config.json", "model-*.safetensors",
                          "model.safetensors", "model.safetensors.index.json", "tekken.json",
                          "SYSTEM_PROMPT.txt", "tokenizer*", "special_tokens_map.json",
                          "preprocessor_config.json", "processor_config.json"]
NEVER_FETCH = "consolidated.safetensors"
SAFETENSORS_DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                           "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


class QuantizeError(MagimacError):
    """A problem with the source, the output or the settings; the message is one line."""


@dataclass(frozen=True)
class TensorInfo:
    """A tensor in a safetensors file: ``dtype`` (safetensors name, e.g. ``BF16``), ``shape``,
    absolute byte ``offset`` of its data in ``file`` and its length ``nbytes``."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    offset: int
    nbytes: int


@dataclass
class Checkpoint:
    """A validated source checkpoint.

    Attributes:
        path: the directory.  config: parsed config.json.  shards: weight files in order.
        tensors: tensor name -> `TensorInfo` over all shards.  tokenizer: the tokenizer
        file found (``tekken.json`` preferred).  hub_id / revision: where it came from
        (None for a local directory).
    """

    path: Path
    config: dict
    shards: list[Path]
    tensors: dict[str, TensorInfo]
    tokenizer: Path
    hub_id: str | None = None
    revision: str | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Parse a safetensors header and check it against the file's size.

    Returns:
        name -> `TensorInfo` (metadata entry dropped).

    Raises:
        QuantizeError: unreadable, truncated or corrupt file (message names the file).
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise QuantizeError(f"{path}: truncated safetensors file ({size} bytes); download it again")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100 << 20):
                raise QuantizeError(f"{path}: corrupt safetensors header (length {n}); download it again")
            header = json.loads(f.read(n))
    except OSError as e:
        raise QuantizeError(f"{path}: cannot read: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise QuantizeError(f"{path}: corrupt safetensors header (not JSON); download it again") from None
    if not isinstance(header, dict):
        raise QuantizeError(f"{path}: corrupt safetensors header; download it again")
    header.pop("__metadata__", None)
    base = 8 + n
    data_len = size - base
    out: dict[str, TensorInfo] = {}
    end_max = 0
    for name, h in header.items():
        try:
            dtype, shape, (begin, end) = h["dtype"], tuple(int(d) for d in h["shape"]), h["data_offsets"]
            count = 1
            for d in shape:
                count *= d
            expect = count * SAFETENSORS_DTYPE_SIZES[dtype]
        except (KeyError, TypeError, ValueError):
            raise QuantizeError(f"{path}: corrupt safetensors header entry for {name!r}; download it again") from None
        if end - begin != expect or begin < 0:
            raise QuantizeError(f"{path}: corrupt safetensors header: {name} has {end - begin} bytes, "
                                f"its shape needs {expect}; download it again")
        end_max = max(end_max, end)
        out[name] = TensorInfo(name, dtype, shape, path, base + begin, end - begin)
    if end_max > data_len:
        raise QuantizeError(f"{path}: truncated safetensors file: {size} bytes, header needs "
                            f"{base + end_max}; download it again")
    return out


def read_config(path: Path) -> dict:
    """Parse and check ``path/config.json``.

    Raises:
        QuantizeError: missing, not JSON, not an object, or unknown architecture.
    """
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise QuantizeError(f"{cfg_path}: missing; SOURCE must be a Hugging Face checkpoint directory")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise QuantizeError(f"{cfg_path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise QuantizeError(f"{cfg_path}: cannot read: {e}") from None
    if not isinstance(config, dict):
        raise QuantizeError(f"{cfg_path}: must hold a JSON object")
    try:
        architecture(config)
    except UnknownArchitecture as e:
        raise QuantizeError(f"{cfg_path}: {e}") from None
    return config


def weight_files(path: Path) -> list[Path]:
    """The checkpoint's weight shards (from the index when present), never consolidated.safetensors.

    Raises:
        QuantizeError: malformed index, a listed shard missing, or no weights.
    """
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise QuantizeError(f"{index}: malformed index (needs a 'weight_map' object)") from None
        files = [path / n for n in names]
        for f in files:
            if not f.is_file():
                raise QuantizeError(f"{f}: missing (listed in {index.name}); download it again")
        return files
    files = sorted(p for p in path.glob("model*.safetensors") if p.name != NEVER_FETCH)
    if not files:
        raise QuantizeError(f"{path}: no model*.safetensors weights found")
    return files


def find_tokenizer(path: Path) -> Path:
    """``tekken.json`` (Magistral's tokenizer) or ``tokenizer.json``; raises `QuantizeError`."""
    for name in ("tekken.json", "tokenizer.json"):
        if (path / name).is_file():
            return path / name
    raise QuantizeError(f"{path / 'tekken.json'}: missing tokenizer; the checkpoint needs tekken.json")


def load_checkpoint(path: Path, *, hub_id: str | None = None, revision: str | None = None) -> Checkpoint:
    """Validate a local checkpoint directory (config, tokenizer, weights headers).

    Raises:
        QuantizeError: any problem, as one line naming the file.
    """
    path = Path(path)
    if not path.is_dir():
        raise QuantizeError(f"{path}: not a directory")
    config = read_config(path)
    if config.get("quantization") or config.get("quantization_config"):
        raise QuantizeError(f"{path / 'config.json'}: already quantized; "
                            "quantize the original Hugging Face checkpoint instead")
    tokenizer = find_tokenizer(path)
    shards = weight_files(path)
    tensors: dict[str, TensorInfo] = {}
    for s in shards:
        tensors.update(read_header(s))
    files = [*shards, path / "config.json"]
    files += files_to_copy(path)
    if (path / "model.safetensors.index.json").is_file():
        files.append(path / "model.safetensors.index.json")
    return Checkpoint(path, config, shards, tensors, tokenizer, hub_id, revision, files)


@dataclass(frozen=True)
class HubSource:
    """A checkpoint to download: hub ``repo`` and the ``patterns`` of the files it needs."""

    repo: str
    patterns: tuple[str, ...]


def hub_source(repo: str, patterns: list[str] | tuple[str, ...] = ()) -> HubSource:
    """A `HubSource` for hub id ``repo``: ``patterns`` (default `DEFAULT_ALLOW_PATTERNS`), never
    one that matches ``consolidated.safetensors``."""
    return HubSource(repo, tuple(pat for pat in (patterns or DEFAULT_ALLOW_PATTERNS) if NEVER_FETCH not in pat))


def locate(source: str | Path | HubSource) -> Path | HubSource:
    """Where SOURCE is: an existing local path, or a hub checkout to download.

    A registry name is resolved by the app before it gets here (`magimac.models.registry.
    quantize_source`); this library knows paths and ``owner/name`` hub ids only.

    Raises:
        QuantizeError: neither an existing path, a `HubSource` nor an ``owner/name`` hub id.
    """
    if isinstance(source, HubSource):
        return source
    p = Path(source).expanduser()
    if p.exists():
        return p
    text = str(source)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return hub_source(text)
    raise QuantizeError(f"{text}: no such directory, registry model or hub id (see `magimac models`)")


def _snapshot(hub: HubSource, patterns: list[str], revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub.repo, revision=revision, allow_patterns=patterns))
    except Exception as e:  # network, auth, offline, missing repo: all one line
        raise QuantizeError(f"{hub.repo}: download failed: {one_line(e)}") from None


def fetch_config(hub: HubSource, revision: str | None = None) -> dict:
    """Download only ``config.json`` of ``hub`` (for the size and fit check before the weights)."""
    return read_config(_snapshot(hub, ["config.json"], revision))


def download(hub: HubSource, revision: str | None = None) -> Checkpoint:
    """Download the files ``hub.patterns`` name (never consolidated.safetensors) and validate them."""
    local = _snapshot(hub, list(hub.patterns), revision)
    return load_checkpoint(local, hub_id=hub.repo, revision=local.name)


def resolve_source(source: str | Path | HubSource, *, revision: str | None = None) -> Checkpoint:
    """`load_checkpoint` of a local directory, or `download` of a hub checkout.

    Raises:
        QuantizeError: not found locally nor in the registry, download failed (e.g. offline).
    """
    where = locate(source)
    return load_checkpoint(where) if isinstance(where, Path) else download(where, revision)


def hf_blob_sha256(path: Path) -> str | None:
    """The sha256 of a Hugging Face cache file stored as an LFS blob (the blob's name), else None."""
    real = Path(path).resolve()
    if real.parent.name == "blobs" and len(real.name) == 64 and all(c in "0123456789abcdef" for c in real.name):
        return real.name
    return None


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    """Hex sha256 of a file (`hf_blob_sha256` when it is an LFS blob of the Hugging Face cache)."""
    if known := hf_blob_sha256(path):
        return known
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
