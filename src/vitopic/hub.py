"""Everything vitopic exchanges with the Hugging Face Hub: downloads through huggingface_hub's
cache (a checkpoint's files for `TopicClassifier.from_pretrained`, a base model's files for
training) and the upload of a checkpoint with its model card (`vitopic push-to-hub`)."""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from vitopic.checkpoint import (
    CHECKPOINT_PATTERNS,
    METRICS_FILE,
    QUALITY_WARNINGS,
    CheckpointError,
    not_worth_using,
    open_checkpoint,
)
from vitopic.errors import VitopicError
from vitopic.files import read_json
from vitopic.modelcard import CARD_PLACEHOLDER, validate_card


class HubError(VitopicError, OSError):
    """A file could not be fetched from the Hub; the message says what to do next."""


def where(repo: str, revision: str | None) -> str:
    """A repo as messages name it: `org/name@revision`."""
    return f"{repo}@{revision}" if revision else repo


def resolve(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint dir, or a Hub id's checkpoint files fetched through huggingface_hub's
    download and cache (only `CHECKPOINT_PATTERNS`)."""
    text = str(name_or_path)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise CheckpointError(f"{text}: not a directory (a checkpoint is a directory of files)")
    if text.startswith((".", "/", "~")) or text.count(os.sep) > 1:
        raise CheckpointError(f"{text}: no such directory (neither a local directory nor a Hub id)")
    if not _is_hub_id(text):
        raise CheckpointError(f"{text}: not a local directory and not a valid Hub id (org/name)")
    try:
        return Path(snapshot_download(text, revision=revision, allow_patterns=CHECKPOINT_PATTERNS))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        offline = (
            " (HF_HUB_OFFLINE is set: only the local cache was searched)" if constants.HF_HUB_OFFLINE else ""
        )
        raise CheckpointError(
            f"{text}: could not be fetched from the Hub{offline}: {type(err).__name__}"
        ) from err


def _is_hub_id(text: str) -> bool:
    """`org/name`, spelled as huggingface_hub allows."""
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return text.count("/") == 1


# What to tell the user for each Hub error (GatedRepoError before its base class).
_HUB_ERRORS = (
    (GatedRepoError, "gated repository; accept its terms on the Hub and log in with `hf auth login`"),
    (
        RepositoryNotFoundError,
        "no such model repository on the Hub (or it is private: log in with "
        "`hf auth login`); check model.name_or_path",
    ),
    (
        RevisionNotFoundError,
        "revision not found; use a branch, tag, commit hash or refs/pr/N in model.revision",
    ),
)


def download_file(
    repo: str, revision: str | None, filename: str, optional: bool = False, needs: str = ""
) -> Path | None:
    """One file of a Hub repo through huggingface_hub's cache; None for a missing optional file.

    A HubError names the repo and what to do; `needs` is added when the file is missing (why it
    is required)."""
    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except EntryNotFoundError as err:
        if optional:
            return None
        offline = (
            " in the local cache (HF_HUB_OFFLINE is set: download it once with Hub access, "
            "or unset HF_HUB_OFFLINE)"
            if constants.HF_HUB_OFFLINE
            else ""
        )
        raise HubError(
            f"{where(repo, revision)}: {filename} not found at this revision{needs}{offline}"
        ) from err
    except HFValidationError as err:
        raise HubError(f"{repo}: not a local directory and not a valid Hub id (org/name)") from err
    except OSError as err:  # the Hub's answers, network failures, offline mode with nothing cached
        message = next(
            (text for cls, text in _HUB_ERRORS if isinstance(err, cls)),
            f"could not fetch {filename} from the Hub ({type(err).__name__}); check the "
            "connection, or set HF_HUB_OFFLINE=1 to use the local cache",
        )
        raise HubError(f"{where(repo, revision)}: {message}") from err


def checkpoint_files(directory: str | Path) -> list[Path]:
    """The files of a run directory that make up the checkpoint (no trainer state, no reports)."""
    directory = Path(directory)
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in CHECKPOINT_PATTERNS)
    )


def _check_quality(directory: Path) -> None:
    """CheckpointError unless the training run's metrics.json is there and flags nothing."""
    path = directory / METRICS_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory}: no {METRICS_FILE}, so whether training flagged this model cannot be "
            "checked (the run did not finish writing its results); retrain it, or pass --force "
            "to upload it unchecked"
        )
    metrics = read_json(path, CheckpointError)
    flagged = metrics.get(QUALITY_WARNINGS) if isinstance(metrics, dict) else None
    if flagged:
        raise CheckpointError(
            f"{directory}: training flagged it: {not_worth_using(flagged)}; pass --force to upload it anyway"
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
    that training flagged as not worth using, or whose training results (metrics.json) are
    missing, is refused unless `force`.
    """
    directory = Path(model_dir)
    open_checkpoint(directory)
    if not force:
        _check_quality(directory)
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
