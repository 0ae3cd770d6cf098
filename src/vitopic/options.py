"""The choices `predict` offers, shared by its front-ends (CLI, server) without importing torch."""

from typing import Literal, get_args

Backend = Literal["torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
Split = Literal["sentence", "none"]  # score each sentence and aggregate, or each input whole
SPLITS: tuple[str, ...] = get_args(Split)
