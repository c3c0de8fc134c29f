"""Guard the synthetic world's design: fusing RGB and thermal must beat either modality alone.

Notebook 05 measures the gap with the lab's fusion ViTs (its section 4; 12 runs in
``benchmarks/README.md``). This test measures it cheaply: a logistic regression on 16×16
average-pooled pixels (per channel, standardised) of 2,100 faces at 32 px, trained on 70 % of
the subjects and tested on the other 30 %. Measured (shared machine, ~20 CPU s): seed 0 RGB
0.48, thermal 0.47, both 0.69 macro-F1. If the generator is changed so that one modality alone
carries everything, or the two confuse the same classes, this fails.
"""
import numpy as np
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lab_utils.data.splits import subject_split
from lab_utils.data.synthetic import NUM_CLASSES, SynthFER
from lab_utils.metrics import macro_f1


def fusion_gap(n: int = 2100, image_size: int = 32, pool: int = 16, seed: int = 0,
               C: float = 0.05) -> dict[str, float]:
    """Macro-F1 of a logistic regression on average-pooled pixels (``pool``×``pool`` per channel,
    standardised) for RGB, thermal and both concatenated ("early"), on a 70/30 subject-disjoint
    split of ``SynthFER(n, image_size, seed)``."""
    ds = SynthFER(n, image_size, seed=seed)
    t = ds.tensors()
    tr, te = (np.asarray(s.indices) for s in subject_split(ds, fractions=(0.7, 0.3), seed=seed))
    feats = {m: F.adaptive_avg_pool2d(t[m], pool).flatten(1).numpy() for m in ("rgb", "thermal")}
    feats["early"] = np.concatenate([feats["rgb"], feats["thermal"]], 1)
    y = ds.labels
    out = {}
    for mode, X in feats.items():
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=300))
        clf.fit(X[tr], y[tr])
        out[mode] = macro_f1(y[te], clf.predict(X[te]), NUM_CLASSES)
    return out


def test_fusion_beats_single_modalities():
    f1 = fusion_gap(n=2100, image_size=32, pool=16, seed=0)
    chance = 1 / 7
    assert f1["rgb"] > chance + 0.15, f1
    assert f1["thermal"] > chance + 0.15, f1
    assert f1["early"] >= max(f1["rgb"], f1["thermal"]) + 0.10, f1
