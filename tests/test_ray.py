"""Ray Data batch labelling and Ray Serve, on a local Ray instance (2 CPUs)."""

import json
import time

import httpx
import pyarrow as pa
import pytest
from helpers import DATA

ray = pytest.importorskip("ray")  # the `ray` extra; CI installs it

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def rows(n: int) -> list[dict]:
    """`n` rows of the train split (ids, text, gold labels), cycling."""
    lines = (DATA / "train.jsonl").read_text("utf-8").splitlines()
    return [
        {**json.loads(lines[i % len(lines)]), "id": f"r{i}", "outlet": i % 7, "score_nato": -i}
        for i in range(n)
    ]


def test_map_batches_labels_every_row_as_predict_does(local_ray, trained_dir, classifier):
    from vitopic.integrations.ray import Labeler

    data = rows(3000)
    ds = (
        ray.data.from_items(data)
        .map_batches(
            Labeler,
            fn_constructor_kwargs={"model": str(trained_dir)},
            compute=ray.data.ActorPoolStrategy(size=2),
            batch_size=256,
        )
        .materialize()
    )
    types = dict(zip(ds.schema().names, ds.schema().types, strict=True))
    # list columns stay Arrow lists: the predicted labels and the gold ones passed through
    assert types["labels"] == types["input_labels"] == pa.list_(pa.string())
    out = sorted(ds.take_all(), key=lambda r: int(r["id"][1:]))
    expected = classifier.predict([r["text"] for r in data])
    assert [r["id"] for r in out] == [r["id"] for r in data]  # nothing lost or duplicated
    for row, source, want in zip(out, data, expected, strict=True):
        assert row["text"] == source["text"] and row["outlet"] == source["outlet"]
        assert list(row["input_labels"]) == source["labels"]  # gold labels kept, renamed
        assert row["input_score_nato"] == source["score_nato"]  # not overwritten by a score
        assert list(row["labels"]) == want.labels and row["empty"] == want.empty
        for label, score in want.scores.items():
            assert abs(row[f"score_{label}"] - score) < 1e-5


def test_a_missing_text_column_is_named(local_ray, trained_dir):
    from vitopic.integrations.ray import Labeler

    ds = ray.data.from_items([{"body": "NATO họp."}]).map_batches(
        Labeler, fn_constructor_kwargs={"model": str(trained_dir)}, compute=ray.data.ActorPoolStrategy(size=1)
    )
    with pytest.raises(Exception, match="no 'text' column in the dataset"):
        ds.take_all()


def test_the_http_app_runs_under_ray_serve(local_ray, trained_dir, classifier):
    from ray import serve

    from vitopic.integrations.ray import deployment

    serve.start(http_options={"host": "127.0.0.1", "port": 8123})
    try:
        serve.run(deployment(num_replicas=1).bind(str(trained_dir)), route_prefix="/")
        texts = [r["text"] for r in rows(40)]
        with httpx.Client(base_url="http://127.0.0.1:8123", timeout=60) as http:
            for _ in range(300):
                if http.get("/health").status_code == 200:
                    break
                time.sleep(0.1)
            response = http.post("/predict", json={"texts": texts})
            assert response.status_code == 200, response.text
            got = response.json()["predictions"]
            assert http.post("/predict", json={"texts": []}).status_code == 422
        assert [g["labels"] for g in got] == [p.labels for p in classifier.predict(texts)]
    finally:
        serve.shutdown()
