"""ONNX export of a checkpoint, written next to its weights, for plain ONNX Runtime.

`model.onnx` is the exported graph with ONNX Runtime's transformer fusions (Attention, BiasGelu,
SkipLayerNormalization; onnxscript's `optimize_for_ort`). `model.int8.onnx` is the unfused graph
with dynamic int8 MatMuls: quantising the fused graph leaves the Attention projections in fp32
and ran slower here (see README, Speed). Both take `input_ids` and `attention_mask` (int64,
batch x length, length <= 256) and return `logits` (float32, batch x classes).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx_ir
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxscript.rewriter.ort_fusions import optimize_for_ort

from vitopic.checkpoint import INT8_FILE, ONNX_FILE, load_model, open_checkpoint
from vitopic.config import PHOBERT_MAX_LENGTH
from vitopic.files import replacing
from vitopic.quiet import quiet


class _Logits(torch.nn.Module):
    """(input_ids, attention_mask) -> logits: the graph ONNX Runtime runs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(model_dir: str | Path, int8: bool = False) -> list[Path]:
    """Write `model.onnx` (dynamic batch and length), and `model.int8.onnx` with `int8`."""
    directory = Path(model_dir)
    open_checkpoint(directory)
    model = load_model(directory).eval()
    example = torch.full((2, 16), 5, dtype=torch.long)
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("seq", max=PHOBERT_MAX_LENGTH)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.onnx"
        # torch.onnx lists the torchvision ops it skips; the exporter's warnings concern its internals.
        with quiet("torch.onnx"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Logits(model),
                (example, torch.ones_like(example)),
                str(plain),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        fused, _ = optimize_for_ort(onnx_ir.load(plain))
        # Each file replaces the old one whole (a kill or a full disk leaves the old one): vitopic.files.
        with replacing(directory / ONNX_FILE) as target:
            onnx_ir.save(fused, target, format="protobuf")
        written = [directory / ONNX_FILE]
        if int8:
            with quiet(""), replacing(directory / INT8_FILE) as target:  # quiet: ORT's pre-process advice
                quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8)
            written.append(directory / INT8_FILE)
    return written
