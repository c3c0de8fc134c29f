"""The autograded exercises' checks: what a student's function must do, and what each
typical mistake is told.

Every exercise in the notebooks is three inserted cells: a markdown task with a hint, a
solution cell (the student edition holds a stub that raises instead of the solution) and a
locked test cell that calls the checks below; its hidden part is left out of the student
edition and put back by ``nbgrader autograde``. Each check compares the student's function with the lab's own
implementation (or the formula it implements) on small fixed inputs, prints one stable
``✓`` line (``lab_utils.check``), and on a wrong answer raises ``AssertionError`` saying what
was seen, what was expected, and — for the mistakes students typically make — what to change.

============================  ==============================================  =================================
exercise (notebook)            student writes                                  graded against
============================  ==============================================  =================================
``patchify`` (01)              ``my_patchify(images, p)``                      ``models.patchify``
``self_attention`` (01)        ``my_self_attention(x, attention)``             ``nn.MultiheadAttention``'s forward
``infonce`` (02)               ``my_infonce_loss(img, txt, scale)``            ``training.contrastive_loss``
``grad_check`` (02)            ``finite_difference_grad(f, x, eps)``           autograd (float64), the exact central difference
``recall_at_k`` (02)           ``my_recall_at_k(sim, k)``                      ``metrics.recall_at_k``
``standardize`` (03)           ``standardize(train_embeds, embeds)``           ``HybridViTCLIP.standardize_clip``
``attention_fusion`` (03)      ``attention_fuse(…)``, ``collapse_share(w)``    the hybrid's fusion, ``metrics.pinned_share``
``param_groups`` (04)          ``two_lr_groups(model, lr, scale)``             ``get_optimizer_and_scheduler``
``gradual_unfreezing`` (04)    ``blocks_to_open(…)``, ``unfreeze_top_layers``  which parameters train, by name
``leaked_subjects`` (05)       ``leaked_subjects(subjects_by_split)``          ``data.check_subject_leakage``
``six_channel_stem`` (05)      ``six_channel_stem(conv)``                      ``six_channel_patch_embedding``
============================  ==============================================  =================================

"""
from __future__ import annotations

import functools
import math
from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

from .check import check, check_shape

Mistake = tuple[torch.Tensor, str]
"""A wrong answer a student typically gives (the tensor it produces) and what to tell them."""


F = TypeVar("F", bound=Callable[..., None])


def keeps_rng(check_fn: F) -> F:
    """Run a check inside ``torch.random.fork_rng``: the weights it draws (and those the
    student's function draws) leave the notebook's own random stream where it was, so the
    cells after an exercise train exactly as they would without it."""
    @functools.wraps(check_fn)
    def wrapped(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return check_fn(*args, **kwargs)
    return wrapped  # type: ignore[return-value]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _verdict(got: torch.Tensor, want: torch.Tensor, what: str, mistakes: Sequence[Mistake] = (),
             atol: float = 1e-5) -> None:
    """Raise ``AssertionError`` unless ``got`` equals ``want`` (shape, then values within
    ``atol``); a ``got`` equal to one of the typical ``mistakes`` gets that mistake's hint."""
    dtype = torch.float64 if torch.as_tensor(want).dtype == torch.float64 else torch.float32
    got = torch.as_tensor(got).detach().to(dtype)
    want = torch.as_tensor(want).detach().to(dtype)
    if tuple(got.shape) != tuple(want.shape):
        for wrong, hint in mistakes:
            if tuple(wrong.shape) == tuple(got.shape) and torch.allclose(got, wrong.to(dtype), atol=atol):
                raise AssertionError(f"✗ {what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}\n  → {hint}")
        raise AssertionError(f"✗ {what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    diff = (got - want).abs().max().item() if got.numel() else 0.0
    if diff < atol:
        return
    for wrong, hint in mistakes:
        if tuple(wrong.shape) == tuple(got.shape) and torch.allclose(got, wrong.to(dtype), atol=atol):
            raise AssertionError(f"✗ {what}: wrong values (max |difference| = {diff:.3g})\n  → {hint}")
    raise AssertionError(f"✗ {what}: wrong values, max |difference| from the reference = {diff:.3g} "
                         f"(allowed < {atol:g})\n  → compare your steps one by one with the hint above")


# --------------------------------------------------------------------------- 01 · patchify
def _patchify_mistakes(images: torch.Tensor, p: int) -> list[Mistake]:
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)
    n, d = (H // p) * (W // p), C * p * p
    return [
        (images.reshape(B, n, d), "you reshaped without moving any axis: the pixels of one 'patch' are then "
         "consecutive pixels of a row, not a p×p square. permute(0, 2, 4, 1, 3, 5) brings the patch-grid "
         "axes (H/p, W/p) to the front before the last reshape"),
        (x.permute(0, 2, 4, 3, 5, 1).reshape(B, n, d), "each patch is flattened channel-last (p, p, C); the lab "
         "(and a Conv2d weight (D, C, p, p)) flattens channel-first (C, p, p): permute(0, 2, 4, 1, 3, 5)"),
        (x.permute(0, 4, 2, 1, 3, 5).reshape(B, n, d), "the patches come column by column; ViT reads them row "
         "by row (left to right, then top to bottom): the patch-row axis H/p goes before W/p"),
    ]


@keeps_rng
def check_patchify(my_patchify: Callable[[torch.Tensor, int], torch.Tensor],
                   shape: Sequence[int] = (2, 3, 32, 48), patch_size: int = 16, seed: int = 0) -> None:
    """``my_patchify(images (B, C, H, W), p)`` must equal ``lab_utils.models.patchify``:
    ``(B, N, C·p·p)``, patches row by row, each flattened in ``(C, p, p)`` order."""
    from .models import patchify

    images = torch.rand(*shape, generator=_generator(seed))
    want = patchify(images, patch_size)
    got = my_patchify(images, patch_size)
    check_shape(torch.as_tensor(got), tuple(want.shape), f"my_patchify on {tuple(shape)}, p={patch_size}")
    _verdict(got, want, "my_patchify", _patchify_mistakes(images, patch_size), atol=1e-12)
    print(f"✓ my_patchify == lab_utils.models.patchify on {tuple(shape)}, p={patch_size} (bit for bit)")


@keeps_rng
def check_patchify_rejects(my_patchify: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """A side that the patch size does not divide must raise ``ValueError`` (a convolution
    would silently drop the leftover pixels)."""
    try:
        my_patchify(torch.zeros(1, 3, 30, 32), 16)
    except ValueError:
        print("✓ my_patchify refuses a 30×32 image with 16-px patches (ValueError)")
        return
    except RuntimeError as err:
        raise AssertionError(f"✗ my_patchify(30×32 image, p=16) raised RuntimeError ({err}); expected a "
                             "ValueError that says the side must be a multiple of the patch size\n  → check "
                             "H % p and W % p first and raise ValueError with a message") from None
    raise AssertionError("✗ my_patchify(30×32 image, p=16) returned a result; expected ValueError\n  → 30 is "
                         "not a multiple of 16: check H % p == 0 and W % p == 0 and raise ValueError otherwise")


# --------------------------------------------------------------------------- 01 · [CLS] + positions
def _embeddings(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = _generator(seed)
    img = torch.nn.functional.normalize(torch.randn(batch, dim, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(img + 0.8 * torch.randn(batch, dim, generator=g), dim=-1)
    return img, txt


@keeps_rng
def check_contrastive_symmetric(my_contrastive_loss: Callable[..., torch.Tensor], batch: int = 5,
                                dim: int = 8, seed: int = 3) -> None:
    """Swapping the roles of images and texts must not change a symmetric loss, and a
    perfectly aligned batch with a large scale must cost almost nothing."""
    img, txt = _embeddings(batch, dim, seed)
    a, b = float(my_contrastive_loss(img, txt, 10.0)), float(my_contrastive_loss(txt, img, 10.0))
    if abs(a - b) > 1e-5:
        raise AssertionError(f"✗ loss(images, texts) = {a:.4f} but loss(texts, images) = {b:.4f}; a symmetric loss "
                             "gives the same number\n  → use both directions (rows and columns) and average them")
    print("✓ loss(images, texts) == loss(texts, images)")
    eye = torch.eye(batch, dim)
    aligned = float(my_contrastive_loss(eye, eye, 100.0))
    if not aligned < 1e-3:
        raise AssertionError(f"✗ a perfectly aligned batch (each image = its caption) costs {aligned:.4f}, expected "
                             "≈ 0\n  → the true pairs are the diagonal: targets = torch.arange(B)")
    print("✓ a perfectly aligned batch costs ≈ 0")


# --------------------------------------------------------------------------- 03 · attention fusion
def _fusion_modules(vit_dim: int, clip_dim: int, heads: int, seed: int) -> tuple[nn.Linear, nn.MultiheadAttention]:
    torch.manual_seed(seed)
    return nn.Linear(clip_dim, vit_dim), nn.MultiheadAttention(vit_dim, heads, batch_first=True).eval()


class _TinyFER(nn.Module):
    """A backbone (``vit``) and a head (``classifier``), like ``ViTForFER``, in a few weights."""

    backbone_modules = ("vit",)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.vit = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 4))
        self.classifier = nn.Linear(4, 3)


def _group_summary(groups: Sequence[dict]) -> dict[str, tuple[float, set[int]]]:
    return {str(g.get("name", f"group {i}")): (float(g["lr"]), {id(p) for p in g["params"]})
            for i, g in enumerate(groups)}


@keeps_rng
def check_param_groups(two_lr_groups: Callable[..., list], learning_rate: float = 1e-3,
                       backbone_lr_scale: float = 0.1, freeze_first: bool = False) -> None:
    """``two_lr_groups(model, learning_rate, backbone_lr_scale)`` must return the two AdamW
    parameter groups that ``get_optimizer_and_scheduler`` builds: ``{"name": "backbone",
    "params": [...], "lr": lr · scale}`` and ``{"name": "head", ..., "lr": lr}``, trainable
    weights only (frozen ones left out)."""
    from .training import get_optimizer_and_scheduler

    model = _TinyFER()
    if freeze_first:
        for p in model.vit[0].parameters():
            p.requires_grad_(False)
    opt, _ = get_optimizer_and_scheduler(model, learning_rate, 0, 10, backbone_lr_scale=backbone_lr_scale)
    want = _group_summary(opt.param_groups)
    got_groups = two_lr_groups(model, learning_rate, backbone_lr_scale)
    check(isinstance(got_groups, (list, tuple)) and all(isinstance(g, dict) and "params" in g and "lr" in g
                                                       for g in got_groups),
          "two_lr_groups returns a list of dicts with 'params' and 'lr'",
          "return [{'name': 'backbone', 'params': [...], 'lr': ...}, {'name': 'head', 'params': [...], 'lr': ...}]")
    got = _group_summary(got_groups)
    check(set(got) == set(want), f"groups named {sorted(want)}",
          f"got {sorted(got)}: name them 'backbone' (the children listed in model.backbone_modules) and 'head' (everything else)")
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    for name, (lr, params) in want.items():
        got_lr, got_params = got[name]
        if params != got_params:
            if got_params & frozen:
                raise AssertionError(f"✗ the {name} group holds frozen weights (requires_grad=False)\n  → leave "
                                     "frozen weights out: the optimizer must not see them")
            raise AssertionError(f"✗ the {name} group has {len(got_params)} tensors, expected {len(params)}\n  → "
                                 "backbone = parameters whose name starts with a child in model.backbone_modules "
                                 "('vit.'), head = every other trainable parameter")
        if abs(got_lr - lr) > 1e-12:
            hint = ("both groups have the same rate: the backbone's is learning_rate × backbone_lr_scale"
                    if got_lr == learning_rate and name == "backbone" else
                    f"the {name} group's rate is learning_rate{' × backbone_lr_scale' if name == 'backbone' else ''}")
            raise AssertionError(f"✗ {name} learning rate = {got_lr:g}, expected {lr:g}\n  → {hint}")
    print(f"✓ backbone at {backbone_lr_scale:g} × {learning_rate:g}, head at {learning_rate:g}"
          + (", frozen weights left out" if freeze_first else ""))


# --------------------------------------------------------------------------- 05 · 6-channel stem
def _stem(bias: bool, seed: int) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(3, 8, kernel_size=4, stride=4, bias=bias)


@keeps_rng
def check_six_channel_stem(six_channel_stem: Callable[[nn.Conv2d], nn.Conv2d], bias: bool = True,
                           seed: int = 5) -> None:
    """``six_channel_stem(conv)`` (a pretrained ``Conv2d(3, h, p, stride=p)``) must return a
    ``Conv2d(6, h, p, stride=p)`` that keeps the pretrained scale: for ``[x ; x]`` it gives
    ``conv(x)``, i.e. ``W/2`` in both halves and the same bias (as
    ``lab_utils.models.fer.six_channel_patch_embedding``)."""
    conv = _stem(bias, seed)
    x = torch.rand(2, 3, 8, 8, generator=_generator(seed))
    new = six_channel_stem(conv)
    check(isinstance(new, nn.Conv2d) and new.in_channels == 6 and new.out_channels == conv.out_channels,
          f"a Conv2d from 6 to {conv.out_channels} channels",
          "build nn.Conv2d(2 * conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, bias=...)")
    check((new.kernel_size, new.stride) == (conv.kernel_size, conv.stride),
          f"same kernel and stride as the pretrained stem ({conv.kernel_size[0]}, {conv.stride[0]})")
    check((new.bias is None) == (conv.bias is None),
          "a bias exactly where the pretrained stem has one" if bias else "no bias, like the pretrained stem")
    with torch.no_grad():
        got, want = new(torch.cat([x, x], dim=1)), conv(x)
        w = conv.weight
        b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        xx = torch.cat([x, x], dim=1)
        conv6 = lambda weight, bias_: nn.functional.conv2d(xx, weight, bias_, conv.stride)  # noqa: E731
        mistakes = [
            (conv6(torch.cat([w, w], dim=1), conv.bias), "W was copied into both halves: for [x ; x] that gives "
             "W·x + W·x = 2·W·x, every patch embedding doubled. Put W/2 in each half"),
            (conv6(torch.cat([w, torch.zeros_like(w)], dim=1), conv.bias), "the thermal half is zero: the model "
             "would ignore the thermal image at the start. Put W/2 in both halves"),
            (conv6(torch.cat([w, w], dim=1) / 2, None if conv.bias is None else 2 * b),
             "the bias was doubled: keep the pretrained bias as it is"),
        ]
        _verdict(got, want, "6-channel stem on [x ; x] vs the pretrained stem on x", mistakes, atol=1e-5)
        y = torch.rand(2, 3, 8, 8, generator=_generator(seed + 1))          # a thermal image unlike the RGB one
        xy = torch.cat([x, y], dim=1)
        halves = [(nn.functional.conv2d(xy, torch.cat([w, torch.zeros_like(w)], dim=1), conv.bias, conv.stride),
                   "the thermal half is zero: the stem ignores the thermal image (and starts as an RGB model). "
                   "The task asks for both modalities treated alike: W/2 in each half"),
                  (nn.functional.conv2d(xy, torch.cat([torch.zeros_like(w), w], dim=1), conv.bias, conv.stride),
                   "the RGB half is zero: the stem ignores the RGB image. Put W/2 in each half")]
        _verdict(new(xy), (conv(x) + conv(y)) / 2, "6-channel stem on [rgb ; thermal], two different images",
                 halves, atol=1e-5)
    print("✓ six_channel_stem([x ; x]) == pretrained stem(x): the pretrained scale is kept, both halves alike")


# --------------------------------------------------------------------------- 02 · Recall@K
def _similarities(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy pairs: ``(N, D)`` image and caption embeddings, row ``i`` of each belonging together."""
    img, txt = _embeddings(n, 8, seed)
    return img, torch.nn.functional.normalize(txt + 0.6 * torch.randn(n, 8, generator=_generator(seed + 100)), dim=-1)


@keeps_rng
def check_recall_at_k(my_recall_at_k: Callable[[torch.Tensor, int], float], n: int = 24, k: int = 3,
                      seed: int = 6) -> None:
    """``my_recall_at_k(sim (N, N), k)`` (row i = image i, column j = caption j, true pairs on the
    diagonal) must equal the image→text Recall@K of ``lab_utils.metrics.recall_at_k``: the
    fraction of rows whose diagonal entry is among the row's k largest."""
    from .metrics import recall_at_k

    img, txt = _similarities(n, seed)
    sim = img @ txt.t()
    want = torch.tensor(recall_at_k(img, txt, torch.arange(n), ks=(k,))["image_to_text"][k])
    got = torch.as_tensor(my_recall_at_k(sim.clone(), k)).detach().float()
    check(got.numel() == 1, "my_recall_at_k returns one number",
          f"got shape {tuple(got.shape)}: average the hits over the rows, Recall@K is a single fraction")
    diagonal = torch.arange(n)
    hit_rows = (sim.topk(k, dim=1).indices == diagonal[:, None]).any(dim=1).float().mean()
    hit_cols = (sim.t().topk(k, dim=1).indices == diagonal[:, None]).any(dim=1).float().mean()
    hit_low = (sim.topk(k, dim=1, largest=False).indices == diagonal[:, None]).any(dim=1).float().mean()
    mistakes = [
        (hit_cols, "you ranked each column (caption → images: text→image Recall@K); image→text ranks each "
                   "row: sim.topk(k, dim=1)"),
        (hit_low, "you took the k smallest similarities; the best captions are the k largest: "
                  "topk(k, dim=1) (largest=True, the default) or argsort(dim=1, descending=True)[:, :k]"),
        (hit_rows * n, "you counted the hits; Recall@K is their fraction: divide by N (the number of rows)"),
    ]
    _verdict(got.reshape(()), hit_rows.new_tensor(float(want)), "my_recall_at_k", mistakes, atol=1e-6)
    print(f"✓ my_recall_at_k(sim, k={k}) == image→text R@{k} of lab_utils.metrics.recall_at_k "
          f"on {n} pairs ({float(want):.3f})")


# --------------------------------------------------------------------------- 03 · standardise CLIP features
@keeps_rng
def check_standardize(standardize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n_train: int = 12,
                      n_other: int = 5, dim: int = 6, constant_feature: bool = False, seed: int = 7) -> None:
    """``standardize(train_embeds (N, D), embeds (M, D))`` must return ``(embeds - mean) /
    (std + 1e-6)`` with the per-feature (column) ``mean`` and ``std`` (torch's default,
    N − 1) of the *training* embeddings — the affine map ``HybridViTCLIP.standardize_clip``
    stores (``clip_shift`` = mean, ``clip_scale`` = 1 / (std + 1e-6))."""
    g = _generator(seed)
    train = torch.randn(n_train, dim, generator=g) * torch.linspace(0.5, 2.0, dim) + torch.linspace(-1.0, 1.0, dim)
    other = torch.randn(n_other, dim, generator=g) * 1.5 + 0.7          # held-out images: another spread
    if constant_feature:
        train[:, 0] = 0.25                                              # a feature that never varies in training
    want = (other - train.mean(0)) / (train.std(0) + 1e-6)
    got = torch.as_tensor(standardize(train.clone(), other.clone())).detach().float()
    check_shape(got, (n_other, dim), f"standardised embeddings ({n_other} rows of {dim} features)")
    if constant_feature and not bool(torch.isfinite(got).all()):
        raise AssertionError("✗ standardize: the result holds inf/NaN where a feature is constant over the training "
                             "rows (std = 0)\n  → divide by (std + 1e-6), as standardize_clip does")
    mistakes = [
        ((other - other.mean(0)) / (other.std(0) + 1e-6), "the mean and std were computed from the embeddings "
         "being transformed; they come from the TRAINING embeddings only (otherwise test images leak into the "
         "model): train_embeds.mean(dim=0), train_embeds.std(dim=0)"),
        ((other - other.mean(1, keepdim=True)) / (other.std(1, keepdim=True) + 1e-6), "each row (image) was "
         "normalised; standardisation is per feature: statistics over the training rows, dim=0"),
        ((other - train.mean(1).mean()) / (train.std() + 1e-6), "one mean and one std for all features; each of "
         "the D features gets its own: mean(dim=0), std(dim=0)"),
        ((other - train.mean(0)) / (train.std(0, unbiased=False) + 1e-6), "the std divides by N; torch's "
         "default (and standardize_clip) divides by N − 1: train_embeds.std(dim=0)"),
        ((other - train.mean(0)) * (train.std(0) + 1e-6), "you multiplied by the std; divide by (std + 1e-6)"),
    ]
    _verdict(got, want, "standardize", mistakes, atol=1e-4)
    print("✓ standardize == (embeds − train mean) / (train std + 1e-6), per feature"
          + (" (a constant feature stays finite)" if constant_feature else ""))


# --------------------------------------------------------------------------- 04 · warm-up + cosine
@keeps_rng
def check_leaked_subjects(leaked_subjects: Callable[[dict], object],
                          subjects_by_split: dict | None = None) -> None:
    """``leaked_subjects({split name: set of subject ids})`` must return the set of subjects
    that appear in more than one split — the keys of ``lab_utils.data.check_subject_leakage``
    (which also ignores the unknown subject -1)."""
    from types import SimpleNamespace

    from .data import check_subject_leakage

    if subjects_by_split is None:
        subjects_by_split = {"train": {1, 2, 3, 4, 5, 10}, "val": {5, 6, 7}, "test": {2, 7, 8, 9}}
    given = {name: set(s) for name, s in subjects_by_split.items()}
    want = set(check_subject_leakage({name: SimpleNamespace(subjects=sorted(s, key=str))
                                      for name, s in given.items()}))
    result = leaked_subjects({name: set(s) for name, s in given.items()})
    check(isinstance(result, (set, frozenset, list, tuple, dict)), "leaked_subjects returns a set of subjects",
          f"got {type(result).__name__}: return a set, e.g. {{2, 5, 7}}")
    got = set(result)
    if got == want:
        print(f"✓ leaked_subjects finds the {len(want)} subject(s) shared by splits {sorted(given)}: {sorted(want)}")
        return
    names = list(given)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    in_all = set.intersection(*given.values()) if given else set()
    train_test = given.get("train", set()) & given.get("test", set())
    missing, extra = sorted(want - got, key=str), sorted(got - want, key=str)
    seen = f"got {sorted(got, key=str)}, expected {sorted(want, key=str)}"
    if -1 in got:
        hint = "-1 means 'subject unknown': leave it out, as check_subject_leakage does"
    elif got == train_test:
        hint = ("you compared train with test only; a subject in train and val, or in val and test, leaks too: "
                "check every pair of splits (or count in how many splits each subject appears)")
    elif got == in_all:
        hint = "you kept the subjects found in EVERY split; one shared by any two splits is already a leak"
    elif missing and not extra and got < want and any(got == given[a] & given[b] for a, b in pairs):
        hint = "you compared one pair of splits only; check every pair"
    else:
        hint = (f"missing {missing} and/or extra {extra}: a subject leaks when it appears in two or more of the "
                "splits; count the splits each subject appears in")
    raise AssertionError(f"✗ leaked_subjects: {seen}\n  → {hint}")


# --------------------------------------------------------------------------- 01 · multi-head self-attention
_FORBIDDEN_ATTENTION = ("multi_head_attention_forward", "scaled_dot_product_attention")


class _ForwardRefused(nn.MultiheadAttention):
    """An ``nn.MultiheadAttention`` whose own forward refuses to run: the exercise is to write it."""

    def forward(self, *args, **kwargs):  # noqa: D102
        raise AssertionError("✗ my_self_attention called attention(...), the module's own forward\n  → use only its "
                             "weights (in_proj_weight, in_proj_bias, num_heads, out_proj) and write the attention "
                             "yourself")


def _refuse(name: str) -> Callable[..., None]:
    def refused(*args, **kwargs):
        raise AssertionError(f"✗ my_self_attention called torch.nn.functional.{name}\n  → write the attention "
                             "yourself: scores q·kᵀ/√d, a softmax over the keys, the weighted sum of the values")
    return refused


def _attention_by_hand(x: torch.Tensor, attn: nn.MultiheadAttention) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{variant: (out (B, N, D), weights)}``: the right forward and the typical wrong ones."""
    fn = torch.nn.functional
    B, N, D = x.shape
    h = attn.num_heads
    d = D // h
    q, k, v = fn.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)     # 3 × (B, N, D)

    def split(t: torch.Tensor, heads: int = h) -> torch.Tensor:                         # (B, heads, N, D/heads)
        return t.reshape(B, N, heads, D // heads).transpose(1, 2)

    def merge(t: torch.Tensor) -> torch.Tensor:                                     # (B, heads, N, ·) → (B, N, D)
        return t.transpose(1, 2).reshape(B, N, D)

    def attend(qh, kh, vh, scale, dim=-1, project=True):
        probs = (qh @ kh.transpose(-2, -1) / scale).softmax(dim=dim)                     # (B, heads, N, N)
        mixed = merge(probs @ vh)
        return (attn.out_proj(mixed) if project else mixed), probs

    out, probs = attend(split(q), split(k), split(v), math.sqrt(d))
    variants = {"right": (out, probs.mean(1)), "per head": (out, probs), "head sum": (out, probs.sum(1)),
                "first head": (out, probs[:, 0])}
    raw, _ = attend(split(q), split(k), split(v), math.sqrt(d), project=False)
    variants["no out_proj"] = (raw, probs.mean(1))
    for name, kwargs in {"no scale": dict(scale=1.0), "scale sqrt(D)": dict(scale=math.sqrt(D)),
                         "wrong axis": dict(scale=math.sqrt(d), dim=-2)}.items():
        o, p = attend(split(q), split(k), split(v), **kwargs)
        variants[name] = (o, p.mean(1))
    for name, scale in (("one head", math.sqrt(D)), ("one head, sqrt(d)", math.sqrt(d))):
        o, p = attend(split(q, 1), split(k, 1), split(v, 1), scale)
        variants[name] = (o, p.mean(1))
    interleave = lambda t: t.reshape(B, N, d, h).permute(0, 3, 1, 2)                    # noqa: E731
    p = (interleave(q) @ interleave(k).transpose(-2, -1) / math.sqrt(d)).softmax(-1)
    o = (p @ interleave(v)).permute(0, 2, 3, 1).reshape(B, N, D)
    variants["interleaved heads"] = (attn.out_proj(o), p.mean(1))
    return variants


_ATTENTION_HINTS = {
    "per head": "you returned one attention matrix per head (B, h, N, N); weights is their mean over the heads: "
                "(B, N, N)",
    "head sum": "the weights were summed over the heads; average them (each row then still sums to 1)",
    "first head": "you returned the first head's weights only; average the h heads' matrices",
    "no out_proj": "the heads' outputs were put side by side but not projected: apply attention.out_proj to the "
                   "(B, N, D) result",
    "no scale": "the scores were not divided by √d (d = D / h, the head size): without it the softmax is too peaked",
    "scale sqrt(D)": "the scores were divided by √D; each head divides by the square root of its own size, √d with "
                     "d = D / h",
    "wrong axis": "the softmax ran over the queries (dim=-2); each query's row is a distribution over the keys: "
                  "softmax over the last axis",
    "one head": "the heads were not split: q, k and v go through h separate attentions of d = D / h features each "
                "(reshape (B, N, D) → (B, N, h, d) and move h in front of N)",
    "one head, sqrt(d)": "the heads were not split: q, k and v go through h separate attentions of d = D / h "
                         "features each",
    "interleaved heads": "the heads were cut the wrong way: head j takes the d CONSECUTIVE features j·d … (j+1)·d − 1, "
                         "i.e. reshape to (B, N, h, d), not (B, N, d, h)",
}


@keeps_rng
def check_self_attention(my_self_attention: Callable[..., tuple], batch: int = 2, tokens: int = 5, dim: int = 8,
                         heads: int = 2, seed: int = 8) -> None:
    """``my_self_attention(x (B, N, D), attention)`` must return what ``attention(x, x, x)`` returns for a
    ``batch_first`` ``nn.MultiheadAttention``: the outputs ``(B, N, D)`` and the attention weights
    averaged over the heads ``(B, N, N)`` — computed from the module's weights, without calling its
    forward, ``F.multi_head_attention_forward`` or ``F.scaled_dot_product_attention``."""
    fn = torch.nn.functional
    torch.manual_seed(seed)
    attention = _ForwardRefused(dim, heads, batch_first=True).eval()
    x = torch.randn(batch, tokens, dim, generator=_generator(seed))
    with torch.no_grad():
        want_out, want_w = nn.MultiheadAttention.forward(attention, x, x, x, need_weights=True)
        variants = _attention_by_hand(x, attention)
        saved = {name: getattr(fn, name) for name in _FORBIDDEN_ATTENTION}
        try:
            for name in saved:
                setattr(fn, name, _refuse(name))
            result = my_self_attention(x.clone(), attention)
        finally:
            for name, original in saved.items():
                setattr(fn, name, original)
    check(isinstance(result, (tuple, list)) and len(result) == 2, "my_self_attention returns (outputs, weights)",
          "return two tensors: the outputs (B, N, D) and the head-averaged attention weights (B, N, N)")
    out, weights = result
    right_w = variants["right"][1]
    weight_mistakes = [(w, _ATTENTION_HINTS[name]) for name, (_, w) in variants.items()
                       if name != "right" and not (w.shape == right_w.shape and torch.allclose(w, right_w, atol=1e-5))]
    _verdict(weights, want_w, f"attention weights (B={batch}, N={tokens}, {heads} heads)", weight_mistakes)
    out_mistakes = [(o, _ATTENTION_HINTS[name]) for name, (o, _) in variants.items() if name != "right"]
    _verdict(out, want_out, "my_self_attention outputs", out_mistakes)
    print(f"✓ my_self_attention == nn.MultiheadAttention on x of shape {(batch, tokens, dim)} with {heads} heads: "
          "outputs and head-averaged weights")


# --------------------------------------------------------------------------- 02 · InfoNCE from its definition
def _infonce_parts(img: torch.Tensor, txt: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The image→text (rows) and text→image (columns) halves of CLIP's loss, via logsumexp."""
    logits = scale * img @ txt.t()
    diagonal = logits.diagonal()
    return -(diagonal - logits.logsumexp(dim=1)).mean(), -(diagonal - logits.logsumexp(dim=0)).mean()


@keeps_rng
def check_infonce(my_infonce_loss: Callable[..., torch.Tensor], batch: int = 8, dim: int = 16, scale: float = 14.3,
                  seed: int = 2) -> None:
    """``my_infonce_loss(image_embeds (B, D), text_embeds (B, D), scale)`` must equal
    ``lab_utils.training.contrastive_loss`` (the mean of −log softmax of the diagonal along the rows
    and along the columns of ``scale · image @ textᵀ``, the two directions averaged), and its
    autograd gradient must equal the reference's (float64)."""
    from .training import contrastive_loss

    img, txt = _embeddings(batch, dim, seed)
    want = contrastive_loss(img, txt, scale)
    got = torch.as_tensor(my_infonce_loss(img, txt, scale))
    check(got.dim() == 0, "my_infonce_loss returns a scalar",
          f"got shape {tuple(got.shape)}: average over the batch, the loss is one number")
    rows, cols = _infonce_parts(img, txt, scale)
    unscaled = sum(_infonce_parts(img, txt, 1.0)) / 2
    mistakes = [
        (rows, "your loss is the image→text half only (each row: which caption belongs to this image?). CLIP's loss "
               "is symmetric: add the text→image half (each column) and average the two"),
        (cols, "your loss is the text→image half only (columns); add the image→text half (rows) and average the two"),
        (rows + cols, "you summed the two directions; CLIP averages them: divide by 2"),
        (unscaled, "the similarities were not multiplied by scale (= exp(logit_scale) = 1/temperature): without it "
                   "the softmax is almost flat"),
        (batch * want, "you summed over the batch; the loss is the mean over the B pairs"),
        (-want, "the sign is flipped: the loss is MINUS the mean log-probability of the right pairs (≥ 0)"),
    ]
    _verdict(got.reshape(()), want, "my_infonce_loss", mistakes)
    leaf = img.double().requires_grad_()
    loss = my_infonce_loss(leaf, txt.double(), scale)
    check(isinstance(loss, torch.Tensor) and loss.requires_grad,
          "my_infonce_loss is differentiable: autograd reaches the embeddings",
          "keep every step a torch operation on tensors: no .item(), .detach(), numpy or Python floats on the way")
    grad = torch.autograd.grad(loss, leaf)[0]
    ref = img.double().requires_grad_()
    want_grad = torch.autograd.grad(contrastive_loss(ref, txt.double(), scale), ref)[0]
    _verdict(grad, want_grad, "the gradient of my_infonce_loss w.r.t. the image embeddings (float64)", atol=1e-8)
    print(f"✓ my_infonce_loss == contrastive_loss on a batch of {batch} pairs, value and gradient")


@keeps_rng
def check_infonce_stable(my_infonce_loss: Callable[..., torch.Tensor], batch: int = 6, seed: int = 23) -> None:
    """At CLIP's largest scale (100) and a batch whose true pairs are the LEAST similar ones, the
    loss (about 200) must come out finite and right in float32: ``exp`` of logits near 100
    overflows and the softmax of the diagonal underflows to 0, so only a log-softmax through
    ``logsumexp`` survives."""
    from .training import contrastive_loss

    g = _generator(seed)
    dim = batch // 2 + batch % 2 + 2
    basis = torch.eye(dim)[: (batch + 1) // 2]
    img = torch.stack([s * b for b in basis for s in (1.0, -1.0)])[:batch]             # e1, -e1, e2, -e2, …
    img = torch.nn.functional.normalize(img + 0.01 * torch.randn(batch, dim, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(-img + 0.01 * torch.randn(batch, dim, generator=g), dim=-1)
    want = contrastive_loss(img, txt, 100.0)
    got = torch.as_tensor(my_infonce_loss(img, txt, 100.0)).detach().float().reshape(())
    if not bool(torch.isfinite(got)):
        raise AssertionError(f"✗ my_infonce_loss at scale 100 is {got.item()} (the reference gives {want.item():.1f})\n"
                             "  → exp(100 · cos) overflows float32 (exp(89) is already inf), and the softmax of an "
                             "entry far below its row's maximum underflows to 0, whose log is −inf: compute the "
                             "log-softmax as z − logsumexp(z) (torch.logsumexp subtracts the maximum first)")
    _verdict(got, want, "my_infonce_loss at scale 100", atol=1e-3)
    print("✓ my_infonce_loss stays finite and exact at scale 100 (CLIP's cap), true pairs least similar")


# --------------------------------------------------------------------------- 02 · finite-difference gradient check
def _fd_result(got: object, x: torch.Tensor, before: torch.Tensor, what: str) -> torch.Tensor:
    """The structural checks every finite-difference answer must pass: x put back, a tensor like x."""
    if not torch.allclose(x, before, rtol=0.0, atol=1e-12):
        raise AssertionError(f"✗ {what} left x changed (max |x − x before| = {(x - before).abs().max().item():.3g})\n"
                             "  → after evaluating f at x + eps and at x − eps, put the entry back to its original "
                             "value (save it first), or perturb a copy of x")
    check(isinstance(got, torch.Tensor), f"{what} returns a tensor",
          f"got {type(got).__name__}: return a tensor shaped like x, one partial derivative per entry")
    if tuple(got.shape) != tuple(x.shape):
        raise AssertionError(f"✗ {what}: shape {tuple(got.shape)}, expected x's shape {tuple(x.shape)}\n  → one partial "
                             "derivative per entry of x, in x's layout (torch.zeros_like(x), filled entry by entry)")
    if got.dtype != x.dtype:
        raise AssertionError(f"✗ {what}: dtype {got.dtype}, x is {x.dtype}\n  → keep x's dtype (torch.zeros_like(x)): "
                             "float32 keeps about 7 digits, too few to compare with autograd")
    return got


def _fd_variants(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float) -> list[Mistake]:
    forward, backward, central = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
    f0 = f(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x).reshape(-1)
        e[i] = eps
        e = e.reshape(x.shape)
        plus, minus = f(x + e), f(x - e)
        forward.view(-1)[i], backward.view(-1)[i] = (plus - f0) / eps, (f0 - minus) / eps
        central.view(-1)[i] = (plus - minus) / (2 * eps)
    everything = torch.full_like(x, float((f(x + eps) - f(x - eps)) / (2 * eps)))
    return [
        (forward, "this is the one-sided (forward) difference (f(x + eps) − f(x)) / eps: its error shrinks like eps, "
                  "the central one's like eps². Evaluate f at x + eps AND x − eps, divide by 2·eps"),
        (backward, "this is the one-sided (backward) difference (f(x) − f(x − eps)) / eps: use the central difference "
                   "(f(x + eps) − f(x − eps)) / (2·eps)"),
        (2 * central, "the two points x + eps and x − eps are 2·eps apart: divide by 2·eps, not eps"),
        (-central, "the sign is flipped: f(x + eps) − f(x − eps), in that order"),
        (everything, "every entry got the same number: all entries were moved at once. Move ONE entry at a time "
                     "(e.g. through x.view(-1)[i]) and keep the others where they are"),
    ]


@keeps_rng
def check_finite_difference(finite_difference_grad: Callable[..., torch.Tensor], batch: int = 4, dim: int = 5,
                            scale: float = 5.0, eps: float = 1e-3, seed: int = 24) -> None:
    """``finite_difference_grad(f, x, eps)`` (central differences, one entry at a time) must agree
    with autograd's gradient of ``contrastive_loss`` w.r.t. the image embeddings, in float64, to
    1e-5 (a one-sided difference is off by about 1e-3 here), and leave ``x`` as it was."""
    from .training import contrastive_loss

    img, txt = (t.double() for t in _embeddings(batch, dim, seed))
    f = lambda e: contrastive_loss(e, txt, scale)  # noqa: E731
    x, before = img.clone(), img.clone()
    got = _fd_result(finite_difference_grad(f, x, eps), x, before, "finite_difference_grad(loss, image_embeds)")
    with torch.no_grad():
        mistakes = _fd_variants(f, img, eps)
    leaf = img.clone().requires_grad_()
    want = torch.autograd.grad(f(leaf), leaf)[0]
    _verdict(got, want, "finite_difference_grad vs autograd (float64)", mistakes, atol=1e-5)
    print(f"✓ finite_difference_grad agrees with autograd on contrastive_loss to 1e-5 (float64, eps={eps:g}); "
          "x left unchanged")


@keeps_rng
def check_finite_difference_exact(finite_difference_grad: Callable[..., torch.Tensor], eps: float = 1e-2,
                                  seed: int = 25) -> None:
    """On ``f(x) = Σ x³`` the central difference is exactly ``3x² + eps²`` (a one-sided one is
    ``3x² ± 3x·eps + eps²``): the answer must be that, for the ``eps`` it is given."""
    x = torch.randn(3, 4, generator=_generator(seed), dtype=torch.float64)
    f = lambda t: (t ** 3).sum()  # noqa: E731
    before = x.clone()
    got = _fd_result(finite_difference_grad(f, x, eps), x, before, f"finite_difference_grad(Σx³, x, eps={eps:g})")
    with torch.no_grad():
        mistakes = _fd_variants(f, before, eps)
    want = 3 * before ** 2 + eps ** 2
    mistakes += [(3 * before ** 2, "that is the exact derivative 3x² (autograd's); the task asks for the central "
                                   "difference, which on Σx³ is 3x² + eps²: evaluate f at x ± eps")]
    mistakes += [(3 * before ** 2 + d ** 2, f"the central difference for eps={d:g}, not for the eps={eps:g} you were "
                                            "given: use the eps argument") for d in (1e-3, 1e-4, 1e-5, 1e-6) if d != eps]
    _verdict(got, want, f"finite_difference_grad(Σx³, x, eps={eps:g})", mistakes, atol=1e-9)
    print(f"✓ finite_difference_grad(Σx³) == 3x² + eps², exactly the central difference (eps={eps:g})")


# --------------------------------------------------------------------------- 03 · attention fusion + collapse detector
@keeps_rng
def check_attention_fusion(attention_fuse: Callable[..., tuple], batch: int = 3, vit_dim: int = 8, clip_dim: int = 6,
                           heads: int = 2, seed: int = 4) -> None:
    """``attention_fuse(vit_cls (B, h), clip_feat (B, d), clip_proj, attention)`` must return
    ``(fused (B, h), weights (B, 2))`` as ``HybridViTCLIP``'s attention fusion computes them:
    tokens = stack([vit_cls, clip_proj(clip_feat)], dim=1), self-attention over the two tokens,
    fused = mean of the two output tokens; weights = the head-averaged attention matrix
    ``(B, 2, 2)`` averaged over the two query tokens (``branch_weights``): column 0 the ViT, 1 CLIP."""
    proj, attn = _fusion_modules(vit_dim, clip_dim, heads, seed)
    g = _generator(seed)
    vit, clip = torch.randn(batch, vit_dim, generator=g), torch.randn(batch, clip_dim, generator=g)
    with torch.no_grad():
        tokens = torch.stack([vit, proj(clip)], dim=1)                                   # (B, 2, h)
        mixed, w = attn(tokens, tokens, tokens, need_weights=True, average_attn_weights=True)   # (B, 2, h), (B, 2, 2)
        result = attention_fuse(vit, clip, proj, attn)
    check(isinstance(result, (tuple, list)) and len(result) == 2, "attention_fuse returns (fused, weights)",
          "return two tensors: the fused feature (B, h) and the weight of each branch (B, 2)")
    fused, weights = result
    fused_mistakes = [
        (mixed[:, 0], "you kept only the first token's output (the ViT's); the fusion averages both output tokens"),
        (mixed[:, 1], "you kept only the second token's output (the CLIP's); average both output tokens"),
        (tokens.mean(dim=1), "the tokens were averaged without attention: let them attend to each other first"),
        (mixed.sum(dim=1), "the two output tokens were summed; the fusion averages them"),
    ]
    _verdict(fused, mixed.mean(dim=1), "attention_fuse: the fused feature", fused_mistakes)
    weight_mistakes = [
        (w, "you returned the whole (B, 2, 2) matrix (query token × key token); average it over the two query "
            "tokens: one weight per branch, (B, 2)"),
        (w[:, 0], "you kept only the ViT token's row (its attention over the two keys); average both query rows"),
        (w[:, 1], "you kept only the CLIP token's row; average both query rows (dim=1)"),
        (w.mean(dim=2), "you averaged over the keys, which gives ½ everywhere (each row sums to 1); average over the "
                        "queries instead: the weight a KEY token (branch) receives"),
        (w.sum(dim=1), "the two query rows were summed; average them, so that each example's weights sum to 1"),
    ]
    _verdict(weights, w.mean(dim=1), "attention_fuse: the weight of each branch", weight_mistakes)
    print("✓ attention_fuse == the hybrid model's attention fusion: fused feature and branch weights")


def _collapse_weights(rows: int, modalities: int, seed: int) -> torch.Tensor:
    """Softmax weights ``(rows, modalities)`` with some rows pinned to one modality (never exactly at 0.9)."""
    g = _generator(seed)
    logits = 3.0 * torch.randn(rows, modalities, generator=g)
    logits[::3, 0] += 6.0                                                               # pinned on the first input
    logits[1::5, -1] += 6.0                                                             # … and some on the last
    return logits.softmax(dim=1)


@keeps_rng
def check_collapse_share(collapse_share: Callable[..., float], rows: int = 20, modalities: int = 2, level: float = 0.9,
                         seed: int = 26, weights: torch.Tensor | None = None) -> None:
    """``collapse_share(weights (N, M), level)`` (each row: an example's weights over M inputs, summing
    to 1) must return the share of rows whose LARGEST weight is ≥ ``level`` — a fraction in [0, 1],
    as ``lab_utils.metrics.pinned_share``."""
    from .metrics import pinned_share

    w = _collapse_weights(rows, modalities, seed) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    want = torch.tensor(pinned_share(w, level))
    got = torch.as_tensor(collapse_share(w.clone(), level)).detach().float()
    check(got.numel() == 1, "collapse_share returns one number",
          f"got shape {tuple(got.shape)}: the share of ALL the examples, a single fraction")
    top = w.max(dim=1).values
    mistakes = [
        ((top > level).float().mean(), "a weight exactly at the level counts (≥, not >)"),
        ((w[:, 0] >= level).float().mean(), "you looked at the first input's weight only; collapse onto ANY input "
                                            "counts: use each row's largest weight"),
        ((w[:, -1] >= level).float().mean(), "you looked at one input's weight only; use each row's largest weight"),
        ((top >= level).float().sum(), "you counted the examples; the share divides by their number"),
        ((w >= level).float().mean(), "you took the share of all N·M weights; the share is per example (row): "
                                      "is the row's largest weight ≥ level?"),
        ((top >= level).float().mean() * 100, "that is a percentage; return a fraction in [0, 1]"),
    ]
    _verdict(got.reshape(()), want.float(), f"collapse_share({len(w)}×{w.shape[1]} weights, level={level:g})", mistakes,
             atol=1e-6)
    print(f"✓ collapse_share == lab_utils.metrics.pinned_share on {len(w)}×{w.shape[1]} weights at level {level:g}")


# --------------------------------------------------------------------------- 04 · gradual unfreezing
class _TinyViTFER(nn.Module):
    """``ViTForFER`` in miniature: a ``transformers.ViTModel`` (``vit``) and a head (``classifier``)."""

    backbone_modules = ("vit",)

    def __init__(self, num_layers: int = 4) -> None:
        super().__init__()
        from transformers import ViTConfig, ViTModel

        torch.manual_seed(0)
        config = ViTConfig(hidden_size=8, num_hidden_layers=num_layers, num_attention_heads=2, intermediate_size=16,
                           image_size=8, patch_size=4)
        self.vit = ViTModel(config, add_pooling_layer=False)
        self.classifier = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 3))


def _vit_parts(model: _TinyViTFER) -> dict[str, object]:
    """Parameter names by part: ``head``, ``embeddings``, ``norm`` (the final LayerNorm), ``blocks`` (bottom first)."""
    from .models.fer import encoder_layers

    name_of = {id(p): n for n, p in model.named_parameters()}
    names = lambda module: {name_of[id(p)] for p in module.parameters()}  # noqa: E731
    return {"head": names(model.classifier), "embeddings": names(model.vit.embeddings),
            "norm": names(model.vit.layernorm), "blocks": [names(b) for b in encoder_layers(model.vit)]}


def _unfreeze_hint(got: set, want: set, parts: dict, n: int, start: str) -> str:
    blocks = parts["blocks"]
    opened = {i for i, b in enumerate(blocks) if b <= got}
    lower = set().union(*blocks[:len(blocks) - n]) if n < len(blocks) else set()
    if start == "trainable" and got > want and lower & got:
        return ("blocks that were trainable before the call stayed trainable: freeze the backbone first, then "
                "open the top n blocks")
    if not parts["head"] <= got:
        return "the head (model.classifier) must always train, whatever n is"
    if parts["embeddings"] & got:
        return ("the embeddings (patch projection, [CLS], position embeddings) must stay frozen: only the top n "
                "blocks and the final LayerNorm open")
    if n >= 1 and not parts["norm"] <= got:
        return "the final LayerNorm (model.vit.layernorm) comes after the top block: it opens with the top blocks"
    if n == 0 and parts["norm"] & got:
        return "with n = 0 the whole backbone is frozen, the final LayerNorm too: only the head trains"
    if n and opened == set(range(n)) and n < len(blocks):
        return ("you opened the BOTTOM n blocks (closest to the pixels); unfreezing goes from the top: the last n "
                "of encoder_layers(model.vit)")
    if got < want:
        return "part of the top n blocks stayed frozen: every parameter of each of the top n blocks must train"
    return "head + the top n blocks (+ the final LayerNorm when n ≥ 1) train; everything else is frozen"


@keeps_rng
def check_unfreeze_top_layers(unfreeze_top_layers: Callable[..., object], num_layers: int = 4,
                              ns: Sequence[int] = (0, 1, 2, 4)) -> None:
    """``unfreeze_top_layers(model, n)`` on a ``ViTForFER``-like model must leave exactly these
    trainable: the head, the top ``n`` encoder blocks and (``n ≥ 1``) the final LayerNorm —
    the embeddings and lower blocks frozen — whatever was trainable before (checked from a fully
    trainable and from a fully frozen model)."""
    model = _TinyViTFER(num_layers)
    parts = _vit_parts(model)
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    for start in ("trainable", "frozen"):
        for n in ns:
            want = set(parts["head"]) | (set(parts["norm"]) if n else set())
            for block in parts["blocks"][num_layers - n:] if n else []:
                want |= block
            model.requires_grad_(start == "trainable")
            unfreeze_top_layers(model, n)
            got = {name for name, p in model.named_parameters() if p.requires_grad}
            if got != want:
                count = lambda names: sum(sizes[x] for x in names)  # noqa: E731
                open_ = lambda names: [i for i, b in enumerate(parts["blocks"]) if b <= names]  # noqa: E731
                raise AssertionError(
                    f"✗ unfreeze_top_layers(model, n={n}) on a {num_layers}-block ViT that was all {start} before: "
                    f"{count(got):,} trainable parameters, expected {count(want):,}; trainable blocks (0 = bottom) "
                    f"{open_(got)}, expected {open_(want)}\n  → " + _unfreeze_hint(got, want, parts, n, start))
    print(f"✓ unfreeze_top_layers(model, n) for n in {tuple(ns)} of {num_layers} blocks, from a trainable and from a "
          "frozen model: head always, top n blocks (+ final LayerNorm), embeddings frozen")


@keeps_rng
def check_blocks_to_open(blocks_to_open: Callable[[int, int, int], int], num_layers: int = 4, every: int = 2) -> None:
    """``blocks_to_open(epoch, num_layers, every)`` must give, for every epoch from 0, the number
    of top blocks a gradual-unfreezing schedule trains: none during the first ``every`` epochs,
    one more after each further ``every`` epochs, never more than ``num_layers``."""
    epochs = range(every * (num_layers + 2) + 1)
    want = [min(num_layers, e // every) for e in epochs]
    got = [blocks_to_open(e, num_layers, every) for e in epochs]
    check(all(isinstance(b, int) or (isinstance(b, float) and b.is_integer()) for b in got),
          "blocks_to_open returns whole numbers of blocks", f"got {got[:6]} …: return an int")
    got = [int(b) for b in got]
    if got == want:
        print(f"✓ blocks_to_open(epoch, num_layers={num_layers}, every={every}) for epochs 0…{epochs[-1]}: {want}")
        return
    first = next(e for e in epochs if got[e] != want[e])
    variants = [
        ([min(num_layers, e // every + 1) for e in epochs], "a block already opens in epoch 0: during the first "
         f"`every` epochs (0 … {every - 1}) only the head trains"),
        ([e // every for e in epochs], f"more blocks than the backbone has ({num_layers}): the count stops at "
                                        "num_layers"),
        ([min(num_layers, -(-e // every)) for e in epochs], "a block opens before `every` whole epochs have passed: "
         "count only completed periods of `every` epochs"),
        ([min(num_layers, e) for e in epochs], "one block per epoch; it is one block per `every` epochs"),
    ]
    hint = next((h for v, h in variants if v == got), f"epoch {first} of a schedule with every={every}: write the table "
                "epoch → blocks by hand for the first few periods and compare")
    raise AssertionError(f"✗ blocks_to_open(epoch {first}, num_layers={num_layers}, every={every}) = {got[first]}, "
                         f"expected {want[first]} (epochs 0…{epochs[-1]}: got {got}, expected {want})\n  → {hint}")
