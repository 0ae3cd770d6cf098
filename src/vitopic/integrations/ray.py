"""Ray: batch labelling with Ray Data, and the HTTP service under Ray Serve.

ds = ray.data.read_json("archive.jsonl")
labelled = ds.map_batches(Labeler, fn_constructor_kwargs={"model": "org/model"},
                          compute=ray.data.ActorPoolStrategy(size=2), batch_size=256)

serve.run(deployment(num_replicas=2).bind("org/model"))  # POST /predict as `vitopic serve`
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from vitopic.errors import shown
from vitopic.options import Backend, Split
from vitopic.prediction_io import PREDICTED, input_columns


class Labeler:
    """A callable class for `ray.data.Dataset.map_batches`: the classifier is loaded once per
    worker; each batch comes back with every input column (renamed `input_<name>` where it
    clashes with a predicted one), `labels` (an Arrow list of strings per row), `empty` and
    `score_<label>`. List columns stay Arrow lists (not pickled Python objects)."""

    def __init__(
        self,
        model: str,
        text_column: str = "text",
        revision: str | None = None,
        device: str | None = None,
        backend: Backend = "auto",
        batch_size: int = 32,
        split: Split = "sentence",
        threshold: float | None = None,
    ):
        from vitopic.predict import TopicClassifier

        self.classifier = TopicClassifier.from_pretrained(
            model, revision=revision, device=device, backend=backend
        )
        self.text_column = text_column
        self.options: dict[str, Any] = {"batch_size": batch_size, "split": split, "threshold": threshold}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray | pa.Array]:
        if self.text_column not in batch:
            raise KeyError(
                f"no {self.text_column!r} column in the dataset (columns: "
                f"{sorted(batch)}); pass text_column=..."
            )
        texts = batch[self.text_column].tolist()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                where = f"row {i} of this batch" + (f" (id {shown(batch['id'][i])})" if "id" in batch else "")
                raise TypeError(
                    f"{where}: {self.text_column!r} is {shown(text)}, not a string; drop or fill "
                    "rows without a text first (Dataset.filter or Dataset.map)"
                )
        try:
            predictions = self.classifier.predict(texts, **self.options)
        except ValueError as err:  # predict names the row within the batch
            raise ValueError(f"column {self.text_column!r} of this batch: {err}") from err
        score_columns = {label: f"score_{label}" for label in self.classifier.labels}
        out = {
            name: _as_arrow_lists(column)
            for name, column in input_columns(batch, {*PREDICTED, *score_columns.values()}).items()
        }
        rows = [p.to_row() for p in predictions]
        out["labels"] = pa.array([row["labels"] for row in rows], type=pa.list_(pa.string()))
        out["empty"] = np.array([row["empty"] for row in rows], dtype=bool)
        for label, column in score_columns.items():
            out[column] = np.array([row["scores"][label] for row in rows], dtype=np.float64)
        return out


def _as_arrow_lists(column: np.ndarray) -> np.ndarray | pa.Array:
    """An input column of 1-D arrays (how Ray hands a list column to numpy) as an Arrow list
    column, which Ray stores natively; any other column as it is."""
    values = [v for v in column if v is not None] if column.dtype == object else []
    if values and all(isinstance(v, np.ndarray) and v.ndim == 1 for v in values):
        return pa.array([v if v is None else v.tolist() for v in column])
    return column


def deployment(**deployment_options: Any):
    """A Ray Serve deployment of vitopic's HTTP app; bind it to a model and `serve.run` it.
    `deployment_options` go to `serve.deployment` (num_replicas, ray_actor_options, ...);
    `.bind(model, **create_app_options)` takes what `vitopic.serving.create_app` takes."""
    from ray import serve

    @serve.deployment(**deployment_options)
    @serve.ingress()
    class Vitopic:
        def __init__(self, model: str, **options: Any):
            self.model, self.options = model, options

        def __serve_build_asgi_app__(self):
            from vitopic.serving import create_app

            return create_app(self.model, **self.options)

    return Vitopic
