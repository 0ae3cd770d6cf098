"""vitopic: fine-tune PhoBERT to label Vietnamese news sentences by topic."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Prediction", "TopicClassifier", "__version__"]


def __getattr__(name: str) -> Any:
    """Import the predict API on first use, so `vitopic.config` & co. stay light."""
    if name in ("Prediction", "TopicClassifier"):
        from vitopic import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'vitopic' has no attribute {name!r}")
