"""The demo's split of BBC News: no article in two places, so the golden set stays unseen."""

from __future__ import annotations

from demo.data import BBC_LABELS, broken_batch, held_out, load_bbc_news, split_corpus


def test_golden_set_batches_and_live_traffic_never_share_an_article() -> None:
    corpus = load_bbc_news()
    assert len(corpus) == 2225 and set(corpus["label"]) == set(BBC_LABELS)
    parts = split_corpus(corpus, seed=3, golden=10, batch=15)
    assert {name: len(frame) for name, frame in parts.items()} == {
        "golden": 50, "batch-01": 75, "batch-02": 75,
    }  # fmt: skip
    assert all((parts["golden"]["label"].value_counts() == 10).tolist())
    texts = [set(frame["text"]) for frame in parts.values()]
    live = set(held_out(corpus, parts)["text"])
    everything = [*texts, live]
    for i, first in enumerate(everything):
        for second in everything[i + 1 :]:
            assert not first & second
    # The same seed gives the same split: a rerun of the demo trains on the same data.
    again = split_corpus(corpus, seed=3, golden=10, batch=15)
    assert again["batch-01"]["text"].tolist() == parts["batch-01"]["text"].tolist()


def test_the_broken_batch_carries_the_faults_the_suite_must_catch() -> None:
    parts = split_corpus(load_bbc_news(), seed=3, golden=10, batch=40)
    broken = broken_batch(parts["golden"], parts["batch-01"])
    assert (broken["label"] == "weather").sum() == 5
    assert len(set(broken["text"]) & set(parts["golden"]["text"])) == 4
