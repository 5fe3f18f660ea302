"""ONNX export of a (shrunk) CTC model and an onnxruntime check of its outputs.

Needs the optional extra ``pip install 'audio-lottery[onnx]'`` (``onnx`` + ``onnxruntime``). The
graph takes ``feats`` ``[B, T, F]`` float32 and ``feat_lens`` ``[B]`` int64 (batch and time are
dynamic) and returns ``log_probs`` ``[B, T', V]`` and ``out_lens`` ``[B]``, like ``model.forward``.
It uses torch's TorchScript-based exporter, which handles ``nn.LSTM``; tested on DeepSpeech2.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from audio_lottery.layout import EXPORT_ONNX

ONNX_FILE = EXPORT_ONNX  # the name inside an export folder (layout.ExportLayout.onnx)


def onnx_available() -> bool:
    """True when both ``onnx`` and ``onnxruntime`` import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model: nn.Module, path: Path, feat_dim: int, frames: int = 64) -> Path:
    """Write ``model`` (eval mode, dense weights) as ONNX to ``path`` (opset 17)."""
    if not onnx_available():
        raise RuntimeError("ONNX export needs the optional extra: pip install 'audio-lottery[onnx]'")
    was_training = model.training
    model.eval()
    feats = torch.randn(2, frames, feat_dim)
    lens = torch.tensor([frames, frames // 2])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (feats, lens), str(tmp), input_names=["feats", "feat_lens"],
                output_names=["log_probs", "out_lens"], opset_version=17, dynamo=False,
                dynamic_axes={"feats": {0: "batch", 1: "frames"}, "feat_lens": {0: "batch"},
                              "log_probs": {0: "batch", 1: "out_frames"}, "out_lens": {0: "batch"}},
            )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training)
    return path


def run_onnx(path: Path, feats: Tensor, feat_lens: Tensor, threads: int = 1) -> tuple[Tensor, Tensor]:
    """``(log_probs, out_lens)`` of the ONNX model at ``path`` under onnxruntime (CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    out, lens = session.run(None, {"feats": feats.numpy(), "feat_lens": feat_lens.numpy()})
    return torch.from_numpy(out), torch.from_numpy(lens)


def max_valid_difference(a: Tensor, a_lens: Tensor, b: Tensor, b_lens: Tensor) -> float:
    """Largest |a - b| over the valid output frames (inf if the lengths differ)."""
    if not torch.equal(a_lens.to(torch.int64), b_lens.to(torch.int64)) or a.shape != b.shape:
        return float("inf")
    valid = torch.arange(a.shape[1])[None, :] < a_lens[:, None]
    return float((a - b)[valid].abs().max()) if bool(valid.any()) else 0.0
