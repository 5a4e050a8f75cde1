"""The label-noise verdict on constructed champion answers with known rates."""

from evaluation.label_noise import NoisePolicy, confident_disagreements, judge

POLICY = NoisePolicy(confidence=0.9, margin=0.10, alpha=0.01)
LABELS = ["a", "b", "c", "d"]


def golden(n: int = 200, wrong: int = 4):
    truth = [LABELS[i % 4] for i in range(n)]
    predicted = [LABELS[(i + 1) % 4] if i < wrong else t for i, t in enumerate(truth)]
    return truth, predicted, [0.95] * n


def test_shuffled_labels_are_probable_noise_with_examples() -> None:
    truth = [LABELS[i % 4] for i in range(300)]
    given = [LABELS[(i + 2) % 4] if i % 5 < 2 else t for i, t in enumerate(truth)]  # 40% mislabelled
    verdict = judge(given, truth, [0.97] * 300, *golden(), POLICY, rows=list(range(1000, 1300)))
    assert verdict.noisy and verdict.batch_rate == 0.4 and verdict.golden_rate == 0.02
    assert verdict.p_value < 1e-10
    assert verdict.examples[0]["row"] == 1000 and verdict.examples[0]["predicted"] == "a"
    assert verdict.describe().startswith(
        "probable label noise: the champion confidently disagrees with 40.0%"
    )


def test_a_batch_labelled_like_the_golden_set_passes() -> None:
    truth = [LABELS[i % 4] for i in range(300)]
    given = [LABELS[(i + 1) % 4] if i < 9 else t for i, t in enumerate(truth)]  # 3%, golden 2%
    assert not judge(given, truth, [0.95] * 300, *golden(), POLICY).noisy


def test_a_small_batch_is_not_condemned_on_a_handful_of_rows() -> None:
    truth = [LABELS[i % 4] for i in range(10)]
    given = ["d", "a", *truth[2:]]  # 2 of 10 disagree: 20%, above 2% + 10%, but p > 0.01 at n=10
    verdict = judge(given, truth, [0.95] * 10, *golden(), POLICY)
    assert verdict.batch_rate - verdict.golden_rate > POLICY.margin
    assert not verdict.noisy and 0.01 < verdict.p_value < 0.1


def test_unsure_disagreements_do_not_count() -> None:
    assert confident_disagreements(["a", "a", "a"], ["b", "b", "a"], [0.95, 0.5, 0.99], 0.9) == [0]
    truth = [LABELS[i % 4] for i in range(300)]
    given = [LABELS[(i + 2) % 4] for i in range(300)]  # every label wrong, but the champion is unsure
    assert not judge(given, truth, [0.6] * 300, *golden(), POLICY).noisy
