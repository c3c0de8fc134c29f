"""The autograded exercises' checks: what a student's function must do, and what each
typical mistake is told.

Every exercise in the notebooks is three inserted cells: a markdown task with a hint, a
solution cell (``### BEGIN SOLUTION`` … ``### END SOLUTION``: the student edition replaces it
with a stub that raises) and a locked test cell that calls the checks below; its
``### BEGIN HIDDEN TESTS`` part is left out of the student edition and put back by
``nbgrader autograde``. Each check compares the student's function with the lab's own
implementation (or the formula it implements) on small fixed inputs, prints one stable
``✓`` line (``lab_utils.check``), and on a wrong answer raises ``AssertionError`` saying what
was seen, what was expected, and — for the mistakes students typically make — what to change.

==========================  =========================================  ==========================
exercise (notebook)          student writes                              reference
==========================  =========================================  ==========================
``patchify`` (01)            ``my_patchify(images, p)``                  ``models.patchify``
``tokens`` (01)              ``add_cls_and_positions(tokens, cls, pos)``  the ViT embedding formula
``contrastive`` (02)         ``my_contrastive_loss(img, txt, scale)``    ``training.contrastive_loss``
``recall_at_k`` (02)         ``my_recall_at_k(sim, k)``                  ``metrics.recall_at_k``
``standardize`` (03)         ``standardize(train_embeds, embeds)``       ``HybridViTCLIP.standardize_clip``
``attention_fusion`` (03)    ``attention_fuse(vit, clip, proj, attn)``   the hybrid model's forward
``lr_schedule`` (04)         ``lr_multiplier(step, warmup, total)``      ``get_optimizer_and_scheduler``
``param_groups`` (04)        ``two_lr_groups(model, lr, scale)``         ``get_optimizer_and_scheduler``
``leaked_subjects`` (05)     ``leaked_subjects(subjects_by_split)``      ``data.check_subject_leakage``
``six_channel_stem`` (05)    ``six_channel_stem(conv)``                   ``six_channel_patch_embedding``
==========================  =========================================  ==========================
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

from ..check import check, check_shape

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
    got = torch.as_tensor(got).detach().float()
    want = want.detach().float()
    if tuple(got.shape) != tuple(want.shape):
        for wrong, hint in mistakes:
            if tuple(wrong.shape) == tuple(got.shape) and torch.allclose(got, wrong.float(), atol=atol):
                raise AssertionError(f"✗ {what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}\n  → {hint}")
        raise AssertionError(f"✗ {what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    diff = (got - want).abs().max().item() if got.numel() else 0.0
    if diff < atol:
        return
    for wrong, hint in mistakes:
        if tuple(wrong.shape) == tuple(got.shape) and torch.allclose(got, wrong.float(), atol=atol):
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
    from ..models import patchify

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
@keeps_rng
def check_cls_and_positions(add_cls_and_positions: Callable[..., torch.Tensor], batch: int = 2,
                            num_patches: int = 4, dim: int = 6, seed: int = 1) -> None:
    """``add_cls_and_positions(tokens (B, N, D), cls (1, 1, D), pos (1, 1+N, D))`` must return
    ``cat([cls expanded to B, tokens], dim=1) + pos``: ``(B, 1+N, D)``, ``[CLS]`` first."""
    g = _generator(seed)
    tokens = torch.randn(batch, num_patches, dim, generator=g)
    cls = torch.randn(1, 1, dim, generator=g)
    pos = torch.randn(1, 1 + num_patches, dim, generator=g)
    want = torch.cat([cls.expand(batch, -1, -1), tokens], dim=1) + pos
    got = add_cls_and_positions(tokens, cls, pos)
    check_shape(torch.as_tensor(got), (batch, 1 + num_patches, dim), f"tokens for B={batch}, N={num_patches}")
    mistakes = [
        (torch.cat([tokens, cls.expand(batch, -1, -1)], dim=1) + pos,
         "[CLS] was put at the end; it goes in front (position 0), where the classifier reads it"),
        (torch.cat([cls.expand(batch, -1, -1), tokens], dim=1),
         "the position embeddings are missing: add pos_embed (1, 1+N, D) to the sequence"),
    ]
    _verdict(got, want, "add_cls_and_positions", mistakes)
    print(f"✓ add_cls_and_positions: [CLS] first, then the {num_patches} patches, plus the position embeddings")


# --------------------------------------------------------------------------- 02 · contrastive loss
def _embeddings(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = _generator(seed)
    img = torch.nn.functional.normalize(torch.randn(batch, dim, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(img + 0.8 * torch.randn(batch, dim, generator=g), dim=-1)
    return img, txt


@keeps_rng
def check_contrastive_loss(my_contrastive_loss: Callable[..., torch.Tensor], batch: int = 8, dim: int = 16,
                           scale: float = 14.3, seed: int = 2) -> None:
    """``my_contrastive_loss(image_embeds (B, D), text_embeds (B, D), scale)`` must equal
    ``lab_utils.training.contrastive_loss``: the mean of the image→text (rows) and
    text→image (columns) cross-entropies of ``scale · image @ textᵀ``, diagonal = true pairs."""
    from ..training import contrastive_loss

    img, txt = _embeddings(batch, dim, seed)
    want = contrastive_loss(img, txt, scale)
    got = torch.as_tensor(my_contrastive_loss(img, txt, scale))
    check(got.dim() == 0, "my_contrastive_loss returns a scalar",
          f"got shape {tuple(got.shape)}: average over the batch, the loss is one number")
    logits = scale * img @ txt.t()
    targets = torch.arange(batch)
    ce = torch.nn.functional.cross_entropy
    rows, cols = ce(logits, targets), ce(logits.t(), targets)
    mistakes = [
        (rows, "your loss is the image→text half only (a softmax along each row). CLIP's loss is symmetric: "
               "also take the text→image cross-entropy (along each column, i.e. on logits.T) and average the two"),
        (cols, "your loss is the text→image half only (columns). Add the image→text direction (rows) and "
               "average the two"),
        (rows + cols, "you summed the two directions; CLIP averages them: divide by 2"),
        ((ce(img @ txt.t(), targets) + ce(txt @ img.t(), targets)) / 2,
         "the similarities were not multiplied by scale (= exp(logit_scale) = 1/temperature): without it the "
         "softmax is almost flat"),
    ]
    _verdict(got.reshape(()), want, "my_contrastive_loss", mistakes)
    print(f"✓ my_contrastive_loss == contrastive_loss on a batch of {batch} pairs")


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


@keeps_rng
def check_attention_fuse(attention_fuse: Callable[..., torch.Tensor], batch: int = 3, vit_dim: int = 8,
                         clip_dim: int = 6, heads: int = 2, seed: int = 4) -> None:
    """``attention_fuse(vit_cls (B, H), clip_feat (B, D), clip_proj, attention)`` must do what
    ``HybridViTCLIP``'s attention fusion does: tokens = stack([vit_cls, clip_proj(clip_feat)],
    dim=1) ``(B, 2, H)``, self-attention over them, mean of the two outputs → ``(B, H)``."""
    proj, attn = _fusion_modules(vit_dim, clip_dim, heads, seed)
    g = _generator(seed)
    vit, clip = torch.randn(batch, vit_dim, generator=g), torch.randn(batch, clip_dim, generator=g)
    with torch.no_grad():
        tokens = torch.stack([vit, proj(clip)], dim=1)                    # (B, 2, H)
        mixed, _ = attn(tokens, tokens, tokens)                           # (B, 2, H)
        want = mixed.mean(dim=1)                                          # (B, H)
        got = attention_fuse(vit, clip, proj, attn)
    check_shape(torch.as_tensor(got), (batch, vit_dim), f"fused features (B={batch}, H={vit_dim})")
    mistakes = [
        (mixed[:, 0], "you kept only the first token's output (the ViT's); the fusion averages both tokens: "
                      "mixed.mean(dim=1)"),
        (mixed[:, 1], "you kept only the second token's output (the CLIP's); average both tokens: mixed.mean(dim=1)"),
        (tokens.mean(dim=1), "the tokens were averaged without attention: pass them through attention(tokens, "
                             "tokens, tokens) first"),
    ]
    _verdict(got, want, "attention_fuse", mistakes)
    print("✓ attention_fuse == the hybrid model's attention fusion")


# --------------------------------------------------------------------------- 04 · two learning rates
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
    from ..training import get_optimizer_and_scheduler

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
    print("✓ six_channel_stem([x ; x]) == pretrained stem(x): the pretrained scale is kept")


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
    from ..metrics import recall_at_k

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
    print(f"✓ standardize == (embeds − train mean) / (train std + 1e-6), per feature"
          + (" (a constant feature stays finite)" if constant_feature else ""))


# --------------------------------------------------------------------------- 04 · warm-up + cosine
@keeps_rng
def check_lr_multiplier(lr_multiplier: Callable[[int, int, int], float], warmup_steps: int = 10,
                        total_steps: int = 50) -> None:
    """``lr_multiplier(step, warmup_steps, total_steps)`` must give, at every step from 0 to
    ``total_steps``, the factor that ``get_optimizer_and_scheduler``'s scheduler
    (``transformers.get_cosine_schedule_with_warmup``) multiplies the learning rate by:
    ``step / warmup`` during the warm-up, then ``½ (1 + cos(π · progress))`` with
    ``progress = (step − warmup) / (total − warmup)``."""
    import math

    from ..training import get_optimizer_and_scheduler

    model = _TinyFER()
    _, scheduler = get_optimizer_and_scheduler(model, 1.0, warmup_steps, total_steps, backbone_lr_scale=1.0)
    reference = scheduler.lr_lambdas[0]
    steps = range(total_steps + 1)
    want = torch.tensor([float(reference(s)) for s in steps])
    try:
        got = torch.tensor([float(lr_multiplier(s, warmup_steps, total_steps)) for s in steps])
    except ZeroDivisionError:
        raise AssertionError(f"✗ lr_multiplier(step, warmup_steps={warmup_steps}, total_steps={total_steps}) divides "
                             "by zero\n  → with no warm-up there is nothing to ramp: divide by max(1, warmup_steps) "
                             "(and by max(1, total_steps − warmup_steps))") from None
    w, t = warmup_steps, total_steps
    cos = lambda p: 0.5 * (1.0 + math.cos(math.pi * p))  # noqa: E731
    mistakes = [
        (torch.tensor([cos(s / t) for s in steps]), "there is no warm-up: the rate must start at 0 and rise "
         "linearly to 1 over the first warmup_steps steps (step / warmup_steps)"),
        (torch.tensor([s / max(1, w) if s < w else cos(s / t) for s in steps]), "the cosine already decays during "
         "the warm-up (progress = step / total_steps); it starts when the warm-up ends: progress = (step − "
         "warmup_steps) / (total_steps − warmup_steps)"),
        (torch.tensor([s / max(1, w) if s < w else cos(2 * (s - w) / max(1, t - w)) for s in steps]),
         "the cosine goes through a full period (back up to 1 at the end); it is half a period: "
         "½ (1 + cos(π · progress)), reaching 0 at total_steps"),
        (torch.tensor([min(1.0, (s + 1) / max(1, w)) if s < w else cos((s - w) / max(1, t - w)) for s in steps]),
         "the warm-up is one step ahead: step 0 trains at rate 0, so the factor is step / warmup_steps"),
    ]
    _verdict(got, want, f"lr_multiplier over steps 0…{t} (warm-up {w})", mistakes, atol=1e-6)
    print(f"✓ lr_multiplier == the lab's warm-up + cosine schedule at every step 0…{t} (warm-up {w} steps)")


# --------------------------------------------------------------------------- 05 · subject leakage
@keeps_rng
def check_leaked_subjects(leaked_subjects: Callable[[dict], object],
                          subjects_by_split: dict | None = None) -> None:
    """``leaked_subjects({split name: set of subject ids})`` must return the set of subjects
    that appear in more than one split — the keys of ``lab_utils.data.check_subject_leakage``
    (which also ignores the unknown subject -1)."""
    from types import SimpleNamespace

    from ..data import check_subject_leakage

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
