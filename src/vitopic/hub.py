"""Pushing a checkpoint to the Hugging Face Hub (weights, tokenizer, metadata, model card)."""

from __future__ import annotations

import fnmatch
import json
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

from vitopic.checkpoint import (
    CHECKPOINT_PATTERNS,
    METRICS_FILE,
    QUALITY_WARNINGS,
    CheckpointError,
    open_checkpoint,
)
from vitopic.modelcard import CARD_PLACEHOLDER, validate_card


def checkpoint_files(directory: str | Path) -> list[Path]:
    """The files of a run directory that make up the checkpoint (no trainer state, no reports)."""
    directory = Path(directory)
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in CHECKPOINT_PATTERNS)
    )


def push_to_hub(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    dry_run: bool = False,
    api: HfApi | None = None,
    force: bool = False,
) -> list[str]:
    """Validate, then upload the checkpoint files; the card's usage examples name `repo_id`.

    With `dry_run`, print and return what would be uploaded without contacting the Hub. A model
    that training flagged as not worth using (metrics.json) is refused unless `force`.
    """
    directory = Path(model_dir)
    open_checkpoint(directory)
    metrics = directory / METRICS_FILE
    flagged = json.loads(metrics.read_text("utf-8")).get(QUALITY_WARNINGS) if metrics.is_file() else None
    if flagged and not force:
        raise CheckpointError(
            f"{directory}: training flagged this model as not worth using "
            f"({'; '.join(flagged)}); pass --force to upload it anyway"
        )
    card_path = directory / "README.md"
    if not card_path.is_file():
        raise CheckpointError(f"{directory}: no README.md model card")
    card = card_path.read_text("utf-8").replace(CARD_PLACEHOLDER, repo_id)
    problems = validate_card(card)
    if problems:
        raise CheckpointError(f"{card_path}: model card metadata: " + "; ".join(problems))
    files = checkpoint_files(directory)
    names = [p.name for p in files]
    total = sum(p.stat().st_size for p in files)
    print(
        f"{'would upload' if dry_run else 'uploading'} {len(files)} files "
        f"({total / 1e6:.1f} MB) to {repo_id}{' (private)' if private else ''}:"
    )
    for p in files:
        print(f"  {p.name}  {p.stat().st_size:,} bytes")
    print("model card metadata: valid")
    if dry_run:
        return names
    api = api or HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as staging:
        for p in files:
            shutil.copy2(p, Path(staging) / p.name)
        (Path(staging) / "README.md").write_text(card, "utf-8")
        api.upload_folder(
            folder_path=staging,
            repo_id=repo_id,
            repo_type="model",
            commit_message="Upload vitopic checkpoint",
        )
    return names
