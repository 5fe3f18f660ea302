"""Reader and writer of CTranslate2's ``model.bin`` (binary format version 6), no code executed.

The file is a flat little-endian record (CTranslate2's ``ModelSpec._serialize``); a string is
a ``uint16`` byte count that includes a trailing NUL, then the UTF-8 bytes and the NUL::

    uint32  binary format version (6)
    string  spec name, e.g. "WhisperSpec"
    uint32  spec revision (WhisperSpec: 3)
    uint32  number of variables N
    N times:
        string  variable name, e.g. "decoder/layer_0/ffn/linear_0/weight"
        uint8   rank R
        R x uint32  dimensions (row-major)
        uint8   dtype id: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
        uint32  byte count (= product of dimensions x item size)
        bytes   the raw values
    uint32  number of aliases A
    A times:
        string  alias name (e.g. "decoder/projection/weight")
        string  the variable it stands for (e.g. "decoder/embeddings/weight")

Scalars (rank 0) hold settings such as ``encoder/num_heads`` (int16) or ``decoder/pre_norm``
(int8). Nothing may follow the alias table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audio_lottery.files import atomic_write_bytes

FORMAT_VERSION = 6
# dtype id -> (numpy dtype read from the file, torch dtype of the tensor)
_DTYPES: dict[int, tuple[str, torch.dtype]] = {
    0: ("<f4", torch.float32),
    1: ("i1", torch.int8),
    2: ("<i2", torch.int16),
    3: ("<i4", torch.int32),
    4: ("<f2", torch.float16),
    5: ("<u2", torch.bfloat16),  # no numpy bfloat16: read the bits, reinterpret in torch
}
_IDS = {torch_dtype: i for i, (_, torch_dtype) in _DTYPES.items()}


class CT2FormatError(ValueError):
    """``model.bin`` is not a well-formed CTranslate2 version-6 file; the message names it."""


@dataclass
class CT2Model:
    """The contents of a ``model.bin``: spec name and revision, variables and aliases."""

    spec: str
    revision: int
    variables: dict[str, torch.Tensor] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        """The variable ``name`` (an alias is resolved); KeyError names the missing variable."""
        target = self.aliases.get(name, name)
        if target not in self.variables:
            raise KeyError(f"variable {name!r} not in the model")
        return self.variables[target]


class _Cursor:
    """Sequential reads from a byte buffer; a short read raises CT2FormatError naming ``path``."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = memoryview(data), 0, path

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise CT2FormatError(f"{self.path}: truncated at byte {self.pos} while reading {what}")
        out = self.data[self.pos: self.pos + n]
        self.pos += n
        return out

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        raw = bytes(self.take(self.uint("H", what), what))
        if not raw.endswith(b"\0"):
            raise CT2FormatError(f"{self.path}: {what} at byte {self.pos - len(raw)} is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def read_ct2(path: str | Path) -> CT2Model:
    """Read a CTranslate2 ``model.bin`` into tensors of their stored dtypes (copies, not views)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CTranslate2 model file not found")
    cur = _Cursor(path.read_bytes(), path)
    version = cur.uint("I", "the format version")
    if version != FORMAT_VERSION:
        raise CT2FormatError(f"{path}: CTranslate2 binary format version {version}; only {FORMAT_VERSION} is supported")
    model = CT2Model(cur.string("the spec name"), cur.uint("I", "the spec revision"))
    for _ in range(cur.uint("I", "the variable count")):
        name = cur.string("a variable name")
        shape = [cur.uint("I", f"a dimension of {name}") for _ in range(cur.uint("B", f"the rank of {name}"))]
        dtype_id = cur.uint("B", f"the dtype of {name}")
        if dtype_id not in _DTYPES:
            raise CT2FormatError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        np_dtype, torch_dtype = _DTYPES[dtype_id]
        nbytes = cur.uint("I", f"the byte count of {name}")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(np_dtype).itemsize
        if nbytes != expected:
            raise CT2FormatError(f"{path}: variable {name} of shape {shape} has {nbytes} bytes, expected {expected}")
        values = np.frombuffer(cur.take(nbytes, f"the values of {name}"), dtype=np_dtype).reshape(shape).copy()
        tensor = torch.from_numpy(values)
        model.variables[name] = tensor.view(torch.bfloat16) if dtype_id == 5 else tensor.to(torch_dtype)
    for _ in range(cur.uint("I", "the alias count")):
        alias = cur.string("an alias name")
        model.aliases[alias] = cur.string(f"the target of alias {alias}")
        if model.aliases[alias] not in model.variables:
            raise CT2FormatError(f"{path}: alias {alias} points to missing variable {model.aliases[alias]}")
    if cur.pos != len(cur.data):
        raise CT2FormatError(f"{path}: {len(cur.data) - cur.pos} unexpected bytes after the alias table")
    return model


def _string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def encode_ct2(model: CT2Model) -> bytes:
    """The bytes of ``model`` in binary format version 6 (what :func:`read_ct2` reads back)."""
    parts = [struct.pack("<I", FORMAT_VERSION), _string(model.spec), struct.pack("<II", model.revision,
                                                                                len(model.variables))]
    for name, tensor in model.variables.items():
        if tensor.dtype not in _IDS:
            raise ValueError(f"variable {name}: dtype {tensor.dtype} cannot be stored in a CTranslate2 model")
        raw = tensor.detach().cpu().contiguous()
        raw = raw.view(torch.uint16) if raw.dtype == torch.bfloat16 else raw
        data = raw.numpy().astype(_DTYPES[_IDS[tensor.dtype]][0], copy=False).tobytes()
        parts += [_string(name), struct.pack("<B", tensor.dim()), struct.pack(f"<{tensor.dim()}I", *tensor.shape),
                  struct.pack("<BI", _IDS[tensor.dtype], len(data)), data]
    parts.append(struct.pack("<I", len(model.aliases)))
    for alias, target in model.aliases.items():
        parts += [_string(alias), _string(target)]
    return b"".join(parts)


def write_ct2(path: str | Path, model: CT2Model) -> None:
    """Write ``model`` atomically as a CTranslate2 ``model.bin``."""
    atomic_write_bytes(Path(path), encode_ct2(model))
