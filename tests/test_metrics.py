"""Classification metrics against hand computations (lab_utils.metrics)."""
import numpy as np
import pytest
import torch

from lab_utils import metrics as M
from lab_utils.metrics import accuracy, confusion, macro_f1, per_class_f1


def test_accuracy_and_macro_f1_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    # per class: F1_0 = 2·(1/2·1/2)/(1) = 0.5, F1_1 = 2·(2/3·1)/(5/3) = 0.8, F1_2 = 2·(1·1/2)/(3/2) = 2/3
    assert per_class_f1(y_true, y_pred, 3) == pytest.approx([0.5, 0.8, 2 / 3])
    assert macro_f1(torch.tensor(y_true), torch.tensor(y_pred)) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_counts_missing_classes_when_asked():
    assert macro_f1([0, 0], [0, 0]) == 1.0
    assert macro_f1([0, 0], [0, 0], num_classes=2) == 0.5


def test_confusion_rows_are_true_classes():
    cm = confusion([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    norm = confusion([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3, normalize="true")
    assert np.allclose(norm.sum(1), 1)


def test_calibration_table_and_ece_by_hand():
    """Four predictions in two confidence bins, worked out by hand: bin (0.5, 0.6] holds two
    at 0.55 with one right (gap 0.05), bin (0.9, 1.0] two at 0.95 with both right (gap 0.05);
    ECE = (2 · 0.05 + 2 · 0.05) / 4 = 0.05."""
    from lab_utils.metrics import calibration_table
    from lab_utils.viz import calibration_table as from_viz

    probs = np.array([[0.55, 0.45], [0.45, 0.55], [0.95, 0.05], [0.05, 0.95]])
    labels = np.array([0, 0, 0, 1])
    table = calibration_table(probs, labels)
    assert from_viz is calibration_table                      # one home, re-exported for plots
    assert table["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert table.loc[5, "accuracy"] == 0.5 and table.loc[9, "accuracy"] == 1.0
    assert table.attrs["ece"] == pytest.approx(0.05)
    assert calibration_table(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).attrs["ece"] == pytest.approx(0.0)


def test_pinned_share_counts_rows_handed_to_one_input():
    from lab_utils.metrics import pinned_share

    w = torch.tensor([[0.5, 0.5], [0.95, 0.05], [0.02, 0.98], [0.7, 0.3]])
    assert pinned_share(w) == 0.5 and pinned_share(w, level=0.99) == 0.0 and pinned_share(w, 0.7) == 0.75
    with pytest.raises(ValueError, match="rows sum to 1"):
        pinned_share(torch.tensor([[0.5, 0.6]]))


def test_bootstrap_ci_matches_scikit_learn_on_the_same_resamples_and_leaves_torch_alone():
    from sklearn.metrics import f1_score
    from lab_utils.metrics import bootstrap_ci
    rng = np.random.default_rng(3)
    t = rng.integers(0, 7, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 7, 300))
    idx = np.random.default_rng(5).integers(0, 300, size=(400, 300))      # what bootstrap_ci draws with seed 5
    f1s = [f1_score(t[i], p[i], average="macro", labels=list(range(7)), zero_division=0) for i in idx]
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    low, high = bootstrap_ci(torch.as_tensor(t), torch.as_tensor(p), "f1_macro", num_classes=7, n_boot=400, seed=5)
    assert torch.equal(torch.rand(2), expected)
    assert (low, high) == pytest.approx(tuple(np.quantile(f1s, [0.025, 0.975])), abs=1e-12)
    acc = [(t[i] == p[i]).mean() for i in idx]
    assert bootstrap_ci(t, p, "accuracy", n_boot=400, seed=5) == pytest.approx(tuple(np.quantile(acc, [0.025, 0.975])))
    assert low < macro_f1(t, p, 7) < high


def _clustered_test_set(n_people=30, faces=14, seed=0):
    """Labels, two models' predictions and the person of each face, where how well a model does
    depends mostly on the person (as on real test sets: some people are harder to read)."""
    rng = np.random.default_rng(seed)
    people = np.repeat(np.arange(n_people), faces)
    t = rng.integers(0, 7, len(people))
    skill = rng.uniform(0.1, 0.95, n_people)[people]                  # per person, shared by both models
    right_a = rng.random(len(t)) < skill
    right_b = right_a & (rng.random(len(t)) > 0.08)                    # B: A, with a few more mistakes
    wrong = (t + rng.integers(1, 7, len(t))) % 7
    return t, np.where(right_a, t, wrong), np.where(right_b, t, wrong), people


def test_paired_difference_matches_scikit_learn_on_the_same_resamples_of_people():
    """The independent reference: draw people as the helper does (seed 4), build each resample as
    the concatenation of the drawn people's faces, score both models with scikit-learn, subtract."""
    from sklearn.metrics import f1_score
    t, a, b, people = _clustered_test_set()
    draws = np.random.default_rng(4).integers(0, 30, size=(300, 30))
    diffs = []
    for d in draws:
        idx = np.concatenate([np.flatnonzero(people == k) for k in d])
        diffs.append(f1_score(t[idx], a[idx], average="macro", labels=list(range(7)), zero_division=0)
                     - f1_score(t[idx], b[idx], average="macro", labels=list(range(7)), zero_division=0))
    r = M.paired_difference(t, a, b, groups=people, num_classes=7, names=("A", "B"), n_boot=300, seed=4)
    assert (r.low, r.high) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])), abs=1e-12)
    assert r.difference == pytest.approx(macro_f1(t, a, 7) - macro_f1(t, b, 7), abs=1e-12)
    assert r.n_people == 30 and r.unit == "people"
    acc = M.paired_difference(t, a, b, groups=people, metric="accuracy", n_boot=300, seed=4)
    ref = [(t[i] == a[i]).mean() - (t[i] == b[i]).mean()
           for i in (np.concatenate([np.flatnonzero(people == k) for k in d]) for d in draws)]
    assert (acc.low, acc.high) == pytest.approx(tuple(np.quantile(ref, [0.025, 0.975])), abs=1e-12)


def test_resampling_faces_as_if_independent_gives_too_narrow_an_interval():
    """The bug this guards: an i.i.d. bootstrap over the faces of 30 people. Its interval of one
    model's accuracy is far narrower than the one over people, which is what another test set of
    other people would show (here: the spread of accuracies over many fresh sets of 30 people)."""
    t, a, _, people = _clustered_test_set(seed=1)
    over_people = np.diff(M.bootstrap_ci(t, a, "accuracy", groups=people, n_boot=1000))[0]
    over_faces = np.diff(M.bootstrap_ci(t, a, "accuracy", n_boot=1000))[0]
    fresh = [(lambda t, a, _b, _p: (t == a).mean())(*_clustered_test_set(seed=s)) for s in range(2, 202)]
    true_width = np.diff(np.quantile(fresh, [0.025, 0.975]))[0]
    assert over_faces < 0.6 * over_people
    assert 0.6 * true_width < over_people < 1.6 * true_width


def test_a_paired_difference_tells_apart_what_two_overlapping_intervals_cannot():
    """B is A with a few more mistakes: their own intervals overlap widely, so reading them side by
    side says "tie"; the paired interval excludes 0, and the sentence says which one is ahead."""
    t, a, b, people = _clustered_test_set()
    ia = M.bootstrap_ci(t, a, groups=people, num_classes=7)
    ib = M.bootstrap_ci(t, b, groups=people, num_classes=7)
    assert ia[0] < ib[1]                                                  # unpaired intervals overlap
    r = M.paired_difference(t, a, b, groups=people, num_classes=7, names=("late attention", "late concat"))
    assert r.low > 0 and r.verdict == "a" and r.apart
    assert r.sentence().endswith("this test set tells them apart, late attention ahead")
    assert r.sentence().startswith("late attention − late concat, test macro-F1: +")
    assert "over 30 test people" in r.sentence()
    swapped = M.paired_difference(t, b, a, groups=people, num_classes=7, names=("late concat", "late attention"))
    assert swapped.verdict == "b" and swapped.sentence().endswith("late attention ahead")
    same = M.paired_difference(t, a, a.copy(), groups=people, names=("A", "A again"))
    assert same.verdict == "tie" and same.sentence().endswith("cannot tell them apart")


def test_paired_difference_of_per_item_values_and_its_refusals():
    hits_a = np.array([1, 1, 0, 1, 1, 0, 1, 1], float)
    hits_b = np.array([0, 1, 0, 0, 1, 0, 1, 0], float)
    r = M.paired_difference(None, hits_a, hits_b, metric="mean", n_boot=200)
    assert r.difference == pytest.approx(hits_a.mean() - hits_b.mean()) and r.unit == "images" and r.n_people == 8
    with pytest.raises(ValueError, match="at least 2 people"):
        M.paired_difference([0, 1], [0, 1], [1, 0], groups=[7, 7])
    with pytest.raises(ValueError, match="one person per item"):
        M.paired_difference([0, 1], [0, 1], [1, 0], groups=[7, 8, 9])
    with pytest.raises(ValueError, match=r"got 2 labels and \[2, 3\] predictions"):
        M.paired_difference([0, 1], [0, 1], [1, 0, 1])


@pytest.mark.parametrize("kwargs, message", [({"metric": "auc"}, "Allowed: 'accuracy', 'f1_macro'"),
                                             ({"level": 95}, "between 0 and 1")])
def test_bootstrap_ci_refuses_what_it_cannot_compute(kwargs, message):
    from lab_utils.metrics import bootstrap_ci
    with pytest.raises(ValueError, match=message):
        bootstrap_ci([0, 1], [0, 1], **kwargs)


def test_fit_temperature_finds_the_nll_minimum_and_undoes_a_known_overconfidence():
    from lab_utils.metrics import fit_temperature
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(2000, 7, generator=g) * 2
    labels = torch.distributions.Categorical(logits=true_logits).sample()      # calibrated by construction
    t = fit_temperature(true_logits * 3, labels)                              # three times over-confident
    assert t == pytest.approx(3.0, rel=0.1)
    grid = np.exp(np.linspace(np.log(0.5), np.log(10), 2001))                 # an independent brute-force search
    nll = [float(torch.nn.functional.cross_entropy(true_logits * 3 / s, labels)) for s in grid]
    assert t == pytest.approx(grid[int(np.argmin(nll))], rel=2e-3)
    with pytest.raises(ValueError, match="expects \\(N, C\\) logits and N labels"):
        fit_temperature(torch.zeros(3, 7), torch.zeros(2))


def test_top_confusions_ranks_row_normalised_rates_and_skips_empty_rows():
    cm = np.array([[8, 2, 0],      # a → b: 0.2
                   [1, 1, 8],      # b → c: 0.8, b → a: 0.1
                   [0, 0, 0]])     # c has no example: contributes nothing
    assert M.top_confusions(cm, ["a", "b", "c"], k=2) == ["b → c (0.80)", "a → b (0.20)"]
    assert len(M.top_confusions(cm, ["a", "b", "c"], k=10)) == 6     # every off-diagonal pair, zeros last


def test_neighbour_agreement_against_a_brute_force_count():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g)
    groups = torch.randint(0, 4, (60,), generator=g)
    dist = torch.cdist(x.double(), x.double())
    dist.fill_diagonal_(float("inf"))                          # itself left out
    nearest = dist.topk(7, largest=False).indices
    want = (groups[nearest] == groups[:, None]).double().mean().item()
    assert M.neighbour_agreement(x, groups, k=7) == pytest.approx(want)
    clustered = torch.cat([torch.randn(20, 3, generator=g) + 10 * i for i in range(3)])
    assert M.neighbour_agreement(clustered, torch.arange(3).repeat_interleave(20), k=5) == 1.0
    with pytest.raises(ValueError, match="more than k=10 examples"):
        M.neighbour_agreement(x[:5], groups[:5], k=10)
