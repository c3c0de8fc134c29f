"""Does the synthetic world make fusion worth it? Train tiny ViTs on RGB only, thermal only,
early fusion (6-channel concat) and late fusion (feature concat) and compare macro-F1 on a
subject-disjoint test set.

    python -m lab_utils.data.fusion_check --seeds 0 1 --n 4900 --epochs 35

This is the measurement behind the table in ``data/README.md``; ``tests/test_data_fusion_gap.py``
runs a smaller version of it. Models: ``transformers.ViTModel`` (32 px, patch 8, hidden 64,
4 layers, 4 heads), mean-pooled patch tokens, a linear head, AdamW + cosine schedule, and a
horizontal flip applied to both modalities together.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from .splits import subject_split
from .synthetic import NUM_CLASSES, SynthFER
from .transforms import paired_hflip_batch
from ..models.vit import pool_tokens

MODES = ("rgb", "thermal", "early", "late")


def tiny_vit(num_channels: int, image_size: int = 32, hidden: int = 64, layers: int = 4) -> nn.Module:
    """A small ``transformers.ViTModel`` (patch 8) for the quick experiments."""
    from transformers import ViTConfig, ViTModel
    cfg = ViTConfig(image_size=image_size, patch_size=8, num_channels=num_channels, hidden_size=hidden,
                    num_hidden_layers=layers, num_attention_heads=4, intermediate_size=2 * hidden,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return ViTModel(cfg, add_pooling_layer=False)


class TinyClassifier(nn.Module):
    """RGB-only / thermal-only / early fusion (one ViT) or late fusion (two ViTs, features concatenated).

    forward(rgb (B,3,S,S), thermal (B,3,S,S)) -> logits (B, 7).
    """

    def __init__(self, mode: str, image_size: int = 32, hidden: int = 64, layers: int = 4):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        if mode == "late":
            self.enc_rgb = tiny_vit(3, image_size, hidden, layers)
            self.enc_th = tiny_vit(3, image_size, hidden, layers)
            self.head = nn.Linear(2 * hidden, NUM_CLASSES)
        else:
            self.enc = tiny_vit(6 if mode == "early" else 3, image_size, hidden, layers)
            self.head = nn.Linear(hidden, NUM_CLASSES)

    @staticmethod
    def _pool(enc: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return pool_tokens(enc(pixel_values=x).last_hidden_state, "mean")  # mean of patch tokens

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        if self.mode == "rgb":
            f = self._pool(self.enc, rgb)
        elif self.mode == "thermal":
            f = self._pool(self.enc, thermal)
        elif self.mode == "early":
            f = self._pool(self.enc, torch.cat([rgb, thermal], 1))
        else:
            f = torch.cat([self._pool(self.enc_rgb, rgb), self._pool(self.enc_th, thermal)], 1)
        return self.head(f)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5


def train_eval(mode: str, data: dict, epochs: int = 35, batch_size: int = 64, lr: float = 2e-3,
               seed: int = 0, hidden: int = 64, layers: int = 4, model: nn.Module | None = None) -> dict:
    """Train one model on ``data['train']`` (tensors dict) and return test macro-F1 / accuracy."""
    from ..metrics import macro_f1
    torch.manual_seed(seed)
    tr, te = data["train"], data["test"]
    model = model if model is not None else TinyClassifier(mode, tr["rgb"].shape[-1], hidden, layers)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    n = len(tr["label"])
    steps = epochs * ((n + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for a in range(0, n, batch_size):
            idx = perm[a:a + batch_size]
            rgb, th = paired_hflip_batch(tr["rgb"][idx], tr["thermal"][idx], generator=g)
            loss = nn.functional.cross_entropy(model(_norm(rgb), _norm(th)), tr["label"][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(_norm(te["rgb"][a:a + 512]), _norm(te["thermal"][a:a + 512])).argmax(1)
                          for a in range(0, len(te["label"]), 512)])
    return {"mode": mode, "macro_f1": macro_f1(te["label"], pred, NUM_CLASSES),
            "accuracy": float((pred == te["label"]).float().mean()), "train_s": train_s, "cpu_s": cpu_s,
            "steps": steps,
            "pred": pred}


def quick_fusion_gap(n: int = 2100, image_size: int = 32, pool: int = 16, seed: int = 0,
                     C: float = 0.05) -> dict[str, float]:
    """Macro-F1 of a logistic regression on average-pooled pixels (``pool``×``pool`` per
    channel, standardised) for RGB, thermal and both concatenated ("early"), on a 70/30
    subject-disjoint split of ``SynthFER(n, image_size, seed)``: the cheap version of the
    README's ViT table (a few CPU seconds), used by ``tests/test_data_fusion_gap.py``."""
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..metrics import macro_f1
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


def make_data(n: int, seed: int, image_size: int = 32) -> dict:
    """SynthFER(n) split by subject (70/15/15) into tensors dicts (thermal replicated to 3 channels)."""
    ds = SynthFER(n, image_size, seed=seed, thermal_channels=3)
    t = ds.tensors()
    splits = subject_split(ds, seed=seed)
    return {name: {k: v[torch.as_tensor(sub.indices)] for k, v in t.items()}
            for name, sub in zip(("train", "val", "test"), splits)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n", type=int, default=4900, help="items before the 70/15/15 subject split")
    ap.add_argument("--epochs", type=int, default=35)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--modes", nargs="+", default=list(MODES))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..metrics import confusion
    for seed in args.seeds:
        data = make_data(args.n, seed, args.size)
        for mode in args.modes:
            r = train_eval(mode, data, epochs=args.epochs, seed=seed)
            print(f"seed={seed} n_train={len(data['train']['label'])} n_test={len(data['test']['label'])} "
                  f"mode={mode:8s} macro_f1={r['macro_f1']:.3f} acc={r['accuracy']:.3f} "
                  f"steps={r['steps']} wall_s={r['train_s']:.1f} cpu_s={r['cpu_s']:.1f}", flush=True)
            cm = confusion(data["test"]["label"], r["pred"], NUM_CLASSES)
            print(np.array2string(np.asarray(cm), max_line_width=200), flush=True)


if __name__ == "__main__":
    main()
