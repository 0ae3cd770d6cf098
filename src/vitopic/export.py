"""Exports of a checkpoint, written into its directory, for plain ONNX Runtime or CTranslate2.

`model.onnx` is the exported graph with ONNX Runtime's transformer fusions (Attention, BiasGelu,
SkipLayerNormalization; onnxscript's `optimize_for_ort`). `model.int8.onnx` is the unfused graph
with dynamic int8 MatMuls: quantising the fused graph leaves the Attention projections in fp32
and ran slower here (see README, Speed). Both take `input_ids` and `attention_mask` (int64,
batch x length, length <= 256) and return `logits` (float32, batch x classes).

`ct2-int8/` is the encoder alone as a CTranslate2 model with int8 weights, and the fingerprint of
the checkpoint it came from (`vitopic-source.json`); the classification head is applied from the
checkpoint's own weights at prediction (`vitopic.predict.Ct2Runner`).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from vitopic import __version__
from vitopic.checkpoint import (
    CT2_DIR,
    EXPORT_SOURCE,
    INT8_FILE,
    ONNX_FILE,
    load_model,
    open_checkpoint,
    weights_fingerprint,
)
from vitopic.config import PHOBERT_MAX_LENGTH
from vitopic.errors import import_extra
from vitopic.files import replacing, replacing_directory, write_json
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
    import onnx_ir
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

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


def export_ct2(model_dir: str | Path) -> list[Path]:
    """Write `ct2-int8/`: the encoder as a CTranslate2 model with int8 weights, and the fingerprint
    of the checkpoint it was converted from. The directory is replaced whole (`replacing_directory`)."""
    directory = Path(model_dir)
    open_checkpoint(directory)
    ctranslate2 = import_extra("ctranslate2", "ct2", "vitopic export --ct2")
    fingerprint = weights_fingerprint(directory)  # of the files as they are loaded next
    model = load_model(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    # transformers 5's RoBERTa has absolute positions only and dropped the config attribute that
    # CTranslate2's converter asserts on: set it on the model in memory (the files stay as they are).
    model.config.position_embedding_type = "absolute"

    class Converter(ctranslate2.converters.TransformersConverter):
        """CTranslate2's converter over the model and tokenizer vitopic loaded (safetensors, no
        remote code), instead of its own `from_pretrained` calls."""

        def load_model(self, model_class: type, model_name_or_path: str, **kwargs) -> PreTrainedModel:
            return model.roberta

        def load_tokenizer(
            self, tokenizer_class: type, model_name_or_path: str, **kwargs
        ) -> PreTrainedTokenizerBase:
            return tokenizer

    with replacing_directory(directory / CT2_DIR) as target:
        Converter(str(directory)).convert(str(target), quantization="int8", force=True)
        write_json(target / EXPORT_SOURCE, {"fingerprint": fingerprint, "vitopic": __version__})
    return [directory / CT2_DIR]
