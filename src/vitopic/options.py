"""Named choices shared across vitopic (config, CLI, server, checkpoints), without importing torch."""

from typing import Literal, get_args

# "auto": the fastest export in the model directory on the CPU (vitopic.predict.resolve_backend).
Backend = Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8", "ct2-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
Split = Literal["sentence", "none"]  # score each sentence and aggregate, or each input whole
SPLITS: tuple[str, ...] = get_args(Split)
SegmenterName = Literal["rdrsegmenter", "underthesea", "pyvi", "none"]
SEGMENTERS: tuple[str, ...] = get_args(SegmenterName)
Mode = Literal["multi_label", "single_label"]  # independent labels, or at most one (see vitopic.heads)
MODES: tuple[str, ...] = get_args(Mode)
NONE_CLASS = "none"  # the explicit "no topic" class of single_label mode
