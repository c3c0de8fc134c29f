"""The exercise and written-question cells of the notebooks, and the nbgrader metadata they carry.

Each **exercise** is three cells placed after an existing cell (``after``): a markdown task with
a hint, a solution cell and a locked, graded test cell, all tagged ``exercise`` (which is how
the grader finds a student's exercise cells), with stable ids ``<grade id with ->-task``,
``-solution``, ``-tests``. An exercise may add a fourth, ungraded cell (``uses``, tagged
``uses-exercise``, id ``…-uses``) that uses the student's function in the lesson.

Each **written question** is two markdown cells after an existing cell: the prompt (tagged
``question``) and an answer cell that nbgrader grades by hand (its model answer and rubric stay
in the instructor's edition; the student edition gets "YOUR ANSWER HERE").

    python -m lab_tools.grading.cells --sync notebooks/*.ipynb    # make the notebooks match this file
    python -m lab_tools.grading.cells --check notebooks/*.ipynb   # exit 1 if a notebook does not match
    python -m lab_tools.grading.cells notebooks/*.ipynb           # only insert what is missing

``--sync`` makes every notebook's exercise, question and uses cells exactly what this file says
(replaced where they changed, with their outputs cleared; removed where this file no longer
defines them; inserted after their ``after`` cell where missing; every other cell untouched),
so this file is the one place to change an exercise or a question. Several items after the same
cell follow each other in this file's order, exercises first, then questions.
"""
from __future__ import annotations

import re

import argparse
import copy
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

EXERCISE_TAG = "exercise"
QUESTION_TAG = "question"
USES_TAG = "uses-exercise"
MANAGED_TAGS = (EXERCISE_TAG, QUESTION_TAG, USES_TAG)
_SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
_SOLUTION_BLOCK = re.compile(r"### BEGIN SOLUTION\n.*?### END SOLUTION", re.S)
_HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
"""Cells with one of these tags belong to this file: ``--sync`` rewrites, moves or removes them."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``grade_id`` (also the test cell's id stem), the notebook stem, the id
    of the existing cell it follows, its points, and the three cells' sources."""

    grade_id: str
    notebook: str
    after: str
    points: float
    task: str
    solution: str
    tests: str
    reference: tuple[str, ...] = ()
    """The lab's own names this exercise re-implements (``"patchify"``, ``"lab_utils.models.vit"``):
    a solution that uses one of them scores 0 and is flagged (``lab_tools.grading.grade``)."""
    uses: str = ""
    """Optional: a code cell after the tests that uses the student's function in the lesson (so a
    wrong answer shows in their own figures); not graded, and it must run while the function is
    still the stub (it says so and falls back to the lab's version)."""

    def solution_regions(self) -> list[str]:
        """The text of each ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region: the answer."""
        return _SOLUTION.findall(self.solution)

    def scaffold(self, fill: str = "") -> str:
        """The solution cell with each solution region replaced by ``fill``: what a student is shown."""
        return _SOLUTION_BLOCK.sub(fill, self.solution)

    def hidden_tests(self) -> list[str]:
        """The text of each ``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS`` region."""
        return _HIDDEN.findall(self.tests)


@dataclass(frozen=True)
class Question:
    """A written question, graded by hand: a markdown prompt and a markdown answer cell placed
    after cell ``after``. ``answer`` is the model answer and rubric, which only the instructor's
    notebooks hold (nbgrader replaces it with "YOUR ANSWER HERE" in the student edition)."""

    grade_id: str
    notebook: str
    after: str
    points: float
    prompt: str
    answer: str


EXERCISES: tuple[Exercise, ...] = (
    # ------------------------------------------------------------------ 01 · patches and attention
    Exercise(
        "ex01_patchify", "01_vit_patching", after="35c24923", points=2,
        reference=("patchify", "lab_utils.models.vit"),
        task="""### ✎ Exercise 1 · Patchify, written by you

Write `my_patchify(images, patch_size)` for a batch `(B, C, H, W)` and a patch size `p` that
divides `H` and `W`. It returns `(B, N, C·p·p)` with `N = (H/p)·(W/p)`, laid out as follows:

* token `n = r·(W/p) + c` is the patch in patch-row `r` and patch-column `c` — the patches row by
  row, left to right, then top to bottom;
* its `C·p·p` numbers are the patch's pixels channel by channel, each channel row by row:
  `out[b, n, ch·p·p + i·p + j] = images[b, ch, r·p + i, c·p + j]`.

An image with a side that `p` does not divide must raise a `ValueError` that says so (no
silent cropping).

Graded: bit for bit against that layout on several shapes (one channel or three, square or
not, a single patch), and the `ValueError`. Not allowed (scores 0): calling the lab's `patchify`.

*Hint:* an axis of length `H` can be seen as two axes, *which patch row* × *which pixel row
inside it*, without copying anything. Write down the order of the named axes you want at the
end, then get there. Try it on `torch.arange(2 * 4 * 4).reshape(1, 2, 4, 4)` with `p = 2` and
compare one token with the formula above.""",
        solution='''import torch

def my_patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, C·p·p): patches row by row, each flattened as (C, p, p)."""
    ### BEGIN SOLUTION
    B, C, H, W = images.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f"image sides {H}×{W} must be multiples of the patch size {p}")
    x = images.reshape(B, C, H // p, p, W // p, p)       # [B, C, H/p, p, W/p, p]
    x = x.permute(0, 2, 4, 1, 3, 5)                      # [B, H/p, W/p, C, p, p]
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # [B, N, C·p·p]
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_patchify, check_patchify_rejects

check_patchify(my_patchify)
check_patchify_rejects(my_patchify)
### BEGIN HIDDEN TESTS
check_patchify(my_patchify, shape=(3, 1, 12, 8), patch_size=4, seed=10)
check_patchify(my_patchify, shape=(1, 3, 16, 16), patch_size=16, seed=11)
### END HIDDEN TESTS'''),
    Exercise(
        "ex01_self_attention", "01_vit_patching", after="000580ef", points=2,
        reference=("multi_head_attention_forward", "scaled_dot_product_attention", "MultiHeadSelfAttention",
                   "EncoderBlock", "lab_utils.models.vit"),
        task="""### ✎ Exercise 2 · Multi-head self-attention, from scratch

The block above calls the lab's attention. Write the forward pass yourself:
`my_self_attention(x, attention)`, where `x` is a batch of token sequences `(B, N, D)` and
`attention` an `nn.MultiheadAttention(D, h, batch_first=True)` whose **weights** you use. Return
`(out, weights)`:

1. queries, keys, values: `attention.in_proj_weight` `(3D, D)` stacks `W_q`, `W_k`, `W_v` (in that
   order, `D` rows each) and `attention.in_proj_bias` `(3D,)` their biases: `q = x W_qᵀ + b_q`, …;
2. `h = attention.num_heads` heads, `d = D / h`: head `j` works on the `d` consecutive features
   `j·d … (j+1)·d − 1` of `q`, `k` and `v`;
3. in each head, `softmax(q kᵀ / √d)` is an `(N, N)` matrix whose row `n` is query token `n`'s
   distribution over the `N` keys (each row sums to 1); the head's output is that matrix times `v`;
4. the heads' outputs side by side again, in head order, `(B, N, D)`, through `attention.out_proj`
   → `out` `(B, N, D)`;
5. `weights` `(B, N, N)`: the heads' attention matrices averaged over the heads.

Graded: `out` and `weights` against `attention(x, x, x)` to 1e-5, for several sizes and numbers
of heads. Not allowed (scores 0): calling `attention(...)` itself,
`F.multi_head_attention_forward`, `F.scaled_dot_product_attention`, or the lab's
`MultiHeadSelfAttention` / `EncoderBlock`.

*Hint:* most of the work happens in a tensor of shape `(B, h, N, d)`: one reshape and one
transpose away from `(B, N, D)`. `@` multiplies the last two axes and broadcasts over the
others. Print each intermediate shape before you go on.""",
        solution='''import math

import torch
from torch import nn

def my_self_attention(x: torch.Tensor, attention: nn.MultiheadAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, D) tokens → (outputs (B, N, D), attention weights averaged over the heads (B, N, N))."""
    ### BEGIN SOLUTION
    B, N, D = x.shape
    h = attention.num_heads
    d = D // h
    qkv = x @ attention.in_proj_weight.T + attention.in_proj_bias                      # (B, N, 3D): [q | k | v]
    q, k, v = (t.reshape(B, N, h, d).transpose(1, 2) for t in qkv.chunk(3, dim=-1))   # 3 × (B, h, N, d)
    probs = (q @ k.transpose(-2, -1) / math.sqrt(d)).softmax(dim=-1)                   # (B, h, N, N)
    mixed = (probs @ v).transpose(1, 2).reshape(B, N, D)                               # heads side by side
    return attention.out_proj(mixed), probs.mean(dim=1)
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_self_attention

check_self_attention(my_self_attention)
### BEGIN HIDDEN TESTS
check_self_attention(my_self_attention, batch=3, tokens=4, dim=12, heads=3, seed=9)
check_self_attention(my_self_attention, batch=1, tokens=7, dim=16, heads=4, seed=10)
### END HIDDEN TESTS'''),
    # ------------------------------------------------------------------ 02 · contrastive loss, gradient check, Recall@K
    Exercise(
        "ex02_infonce", "02_clip_contrastive", after="ad73fcd9", points=2,
        reference=("contrastive_loss", "cross_entropy", "log_softmax", "nll_loss", "lab_utils.training"),
        task="""### ✎ Exercise 1 · The symmetric InfoNCE loss, from its definition

Write `my_infonce_loss(image_embeds, text_embeds, scale)`: L2-normalised `(B, D)` image and
caption embeddings, row `i` of each belonging together, and a positive scalar `scale`
(`= exp(logit_scale) = 1/τ`). With the logits `z = scale · image_embeds · text_embedsᵀ` `(B, B)`:

* image → text: `L_rows = −(1/B) Σ_i log( exp(z_ii) / Σ_j exp(z_ij) )` — each row is a B-way
  classification whose right answer is the diagonal;
* text → image: the same along each column, `L_cols = −(1/B) Σ_j log( exp(z_jj) / Σ_i exp(z_ij) )`;
* the loss is `(L_rows + L_cols) / 2`, a 0-d tensor that autograd can differentiate.

It must stay finite for scales up to 100 (CLIP's cap), where `exp(z)` overflows float32 and a
softmax entry far below its row's maximum underflows to 0.

Graded: the value against `lab_utils.training.contrastive_loss` (to 1e-5), its gradient
(float64), and the value at scale 100 on a batch whose true pairs are the least similar ones.
Not allowed (scores 0): `F.cross_entropy`, `log_softmax`, `nll_loss`, the lab's `contrastive_loss`.

*Hint:* `log( exp(z_ii) / Σ_j exp(z_ij) ) = z_ii − log Σ_j exp(z_ij)`, and `torch.logsumexp`
computes the last term without overflow (it subtracts the maximum first). For each direction,
decide which axis the sum runs over.""",
        solution='''import torch

def my_infonce_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, scale) -> torch.Tensor:
    """(B, D), (B, D) L2-normalised, a scalar scale → CLIP's symmetric InfoNCE loss (a 0-d tensor)."""
    ### BEGIN SOLUTION
    logits = scale * image_embeds @ text_embeds.T                         # (B, B): image i vs caption j
    right = logits.diagonal()                                            # the true pairs
    image_to_text = -(right - torch.logsumexp(logits, dim=1)).mean()     # each row: which caption?
    text_to_image = -(right - torch.logsumexp(logits, dim=0)).mean()     # each column: which image?
    return (image_to_text + text_to_image) / 2
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_contrastive_symmetric, check_infonce, check_infonce_stable

check_infonce(my_infonce_loss)
check_infonce_stable(my_infonce_loss)
### BEGIN HIDDEN TESTS
check_infonce(my_infonce_loss, batch=5, dim=12, scale=3.0, seed=20)
check_contrastive_symmetric(my_infonce_loss)
check_infonce_stable(my_infonce_loss, batch=9, seed=21)
### END HIDDEN TESTS'''),
    Exercise(
        "ex02_grad_check", "02_clip_contrastive", after="ad73fcd9", points=2,
        reference=("torch.autograd", "gradcheck"),
        task="""### ✎ Exercise 2 · Check a gradient by finite differences

Autograd computed every gradient of section 4's training. A *gradient check* tests a gradient
(autograd's, or a backward pass written by hand) without trusting it: nudge one input entry and
see how the loss moves. Write `finite_difference_grad(f, x, eps=1e-3)`: `f` maps a tensor shaped
like `x` to a scalar (a 0-d tensor). Return a tensor of `x`'s shape and dtype whose entry at each
position is the **central difference**

`(f(x + eps·e) − f(x − eps·e)) / (2·eps)`, with `e` = 1 at that position and 0 elsewhere.

`x` must be exactly as it was after the call.

Graded, in float64: on `contrastive_loss` as a function of the image embeddings, against
autograd's gradient to 1e-5 (a one-sided difference `(f(x + eps·e) − f(x)) / eps` misses by about
1e-3 there: its error shrinks like `eps`, the central one's like `eps²`); and on `f(x) = Σ x³`,
whose central difference is exactly `3x² + eps²` for the `eps` you are given (autograd's
`3x²` misses it by `eps²`). Not allowed (scores 0): `torch.autograd` (`grad`, `gradcheck`, …).

*Hint:* loop over a flat index `i` (`x.numel()` entries); `t.view(-1)` is a flat view of a tensor
that shares its memory. Move a copy, not `x` — or put the entry back. Turn `f`'s result into a
Python float before storing it.""",
        solution='''import torch

def finite_difference_grad(f, x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """∂f/∂x by central differences, one entry of x at a time; x is left as it was."""
    ### BEGIN SOLUTION
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        step = torch.zeros_like(x)
        step.view(-1)[i] = eps                                   # move entry i only
        grad.view(-1)[i] = (float(f(x + step)) - float(f(x - step))) / (2 * eps)
    return grad
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_finite_difference, check_finite_difference_exact

check_finite_difference(finite_difference_grad)
### BEGIN HIDDEN TESTS
check_finite_difference(finite_difference_grad, batch=3, dim=4, scale=2.0, seed=27)
check_finite_difference_exact(finite_difference_grad)
check_finite_difference_exact(finite_difference_grad, eps=0.05, seed=28)
### END HIDDEN TESTS'''),
    Exercise(
        "ex02_recall_at_k", "02_clip_contrastive", after="75349e22", points=1,
        reference=("recall_at_k", "lab_utils.metrics"),
        task="""### ✎ Exercise 3 · Recall@K from a similarity matrix

Write `my_recall_at_k(sim, k)`: `sim` is an `(N, N)` image × caption similarity matrix (row `i` =
image `i`, column `j` = caption `j`, the true pairs on the diagonal). Return the **image → text**
Recall@K as a Python float: the fraction of the `N` rows (images) whose own entry `sim[i, i]` is
among the `k` largest entries of row `i`.

Graded: against the image → text Recall@K of the table above, for several `N` and `k`. Not
allowed (scores 0): the lab's `recall_at_k`. The cell after the tests computes the table's image
→ text row again with your function.

*Hint:* a row is a hit when its own entry is among its `k` largest. Either find each row's `k`
best columns and look for the row's own index among them, or count how many entries of the row
beat its own one. Then turn the hits into a fraction of the rows.""",
        solution='''import torch

def my_recall_at_k(sim: torch.Tensor, k: int) -> float:
    """(N, N) similarities, true pairs on the diagonal → image→text Recall@K, a fraction in [0, 1]."""
    ### BEGIN SOLUTION
    top = sim.topk(k, dim=1).indices                      # (N, k): the k best captions of each image
    own = torch.arange(sim.shape[0])[:, None]             # (N, 1): each image's own caption
    return (top == own).any(dim=1).float().mean().item()
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_recall_at_k

check_recall_at_k(my_recall_at_k)
### BEGIN HIDDEN TESTS
check_recall_at_k(my_recall_at_k, n=40, k=1, seed=21)
check_recall_at_k(my_recall_at_k, n=15, k=5, seed=22)
### END HIDDEN TESTS''',
        uses='''# The trained model's image → text Recall@K on the held-out faces again, now with YOUR my_recall_at_k
with torch.no_grad():
    _images = recipe.embed_images(model, test.images)                                   # (N, E)
    _sim = _images @ clip_data.encode_captions(model, eval_captions, test.cache).cpu().t()   # (N, N)
for _k in (1, 5, 10):
    _table = recall_after["image_to_text"][_k]
    try:
        _yours = float(my_recall_at_k(_sim, _k))
    except Exception as _err:           # not written yet (NotImplementedError), or it breaks: the table stands
        print(f"my_recall_at_k raised {type(_err).__name__}: the table above (lab_utils.metrics.recall_at_k) stands")
        break
    print(f"R@{_k}: " + ("✓ my_recall_at_k gives the table's value" if abs(_yours - _table) < 1e-6
                         else f"✗ my_recall_at_k gives {_yours:.3f}, the table {_table:.3f}"))'''),
    # ------------------------------------------------------------------ 03 · standardisation, attention fusion
    Exercise(
        "ex03_standardize", "03_hybrid_vit_clip", after="a6213fda", points=1,
        reference=("standardize_clip",),
        task="""### ✎ Exercise 1 · Standardise the CLIP features with training statistics only

`model.standardize_clip(...)` above fixed an affine map from the training faces. Write
`standardize(train_embeds, embeds)`: `(N, d)` training embeddings and any `(M, d)` embeddings →
`(M, d)`, each feature (column) `j` mapped to `(embeds[:, j] − mean_j) / (std_j + 1e-6)`, where
`mean_j` is the mean of column `j` of `train_embeds` and `std_j` its **sample** standard deviation:
the squared deviations summed and divided by **N − 1** (Bessel's correction; `torch.std`'s
default, `correction=1`), then the square root. The statistics come from `train_embeds` only,
never from `embeds`; the `1e-6` keeps a feature that is constant over the training rows finite.

Graded: against that formula to 1e-4, on features with different means and spreads, other rows
than the training ones, and a constant feature. A population std (divide by N) is wrong here.
Not allowed (scores 0): the lab's `standardize_clip`.

*Hint:* decide which axis holds the examples — the statistics run over it — and keep one number
per feature; broadcasting applies `(d,)` statistics to every row. Ask yourself why statistics
computed on the test embeddings would be a leak.""",
        solution='''import torch

def standardize(train_embeds: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
    """(N, d) training embeddings, (M, d) embeddings → (M, d), each feature standardised with training statistics."""
    ### BEGIN SOLUTION
    mean = train_embeds.mean(dim=0)                   # (d,): one per feature, training rows only
    std = train_embeds.std(dim=0)                     # (d,): sample std, divides by N − 1
    return (embeds - mean) / (std + 1e-6)
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_standardize

check_standardize(standardize)
### BEGIN HIDDEN TESTS
check_standardize(standardize, n_train=30, n_other=9, dim=4, seed=31)
check_standardize(standardize, constant_feature=True, seed=32)
### END HIDDEN TESTS'''),
    Exercise(
        "ex03_attention_fusion", "03_hybrid_vit_clip", after="d5d2c0bd", points=2,
        reference=("pinned_share", "branch_weights", "HybridViTCLIP"),
        task="""### ✎ Exercise 2 · The attention fusion and its collapse detector

Write the fusion of section 5 and the detector this section used.

* `attention_fuse(vit_cls, clip_feat, clip_proj, attention)`: the ViT's [CLS] vector `(B, h)`,
  the standardised CLIP feature `(B, d)`, `clip_proj` an `nn.Linear(d, h)` and `attention` an
  `nn.MultiheadAttention(h, heads, batch_first=True)` (call it) → `(fused, weights)`. The two
  vectors form a 2-token sequence `(B, 2, h)` — token 0 the ViT's, token 1 the projected CLIP
  feature — that attends to itself. `fused` `(B, h)` is the mean of the two output tokens.
  `weights` `(B, 2)`: each example's head-averaged attention matrix `(2, 2)` (query token × key
  token) averaged over the two query tokens — column 0 is the weight the ViT token receives,
  column 1 the CLIP token's; each row sums to 1.
* `collapse_share(weights, level=0.9)`: `weights` `(N, M)`, row `n` = example `n`'s weights over `M`
  inputs (summing to 1) → the share of examples, a fraction in [0, 1], whose **largest** weight
  is ≥ `level`.

**What this pooling cannot do.** `fused` mixes the two tokens into the same `h` numbers, so the
classifier cannot tell whether a feature came from the ViT or from CLIP (notebook 05's late
attention keeps each modality in a slot of its own for that reason). **What the detector
detects:** *modality collapse* — the softmax handing (almost) every example to one input, whose
features then reach the classifier alone while the other branch's gradient shrinks with its
weight. A share near 1 means the fusion has collapsed.

Graded: `fused` and `weights` against the hybrid model's fusion, and `collapse_share` against
`lab_utils.metrics.pinned_share` (other levels, three inputs, a weight exactly at the level).
Not allowed (scores 0): `pinned_share`, `branch_weights`, the `HybridViTCLIP` model itself.

*Hint:* `attention(q, k, v, need_weights=True, average_attn_weights=True)` returns the outputs
and the head-averaged weights `(B, 2, 2)`. A query's row sums to 1 — which axis do you average to
get one weight per key token? For the share, each row's largest weight is what matters.""",
        solution='''import torch

def attention_fuse(vit_cls: torch.Tensor, clip_feat: torch.Tensor, clip_proj, attention):
    """(B, h), (B, d) → (fused (B, h), weight of each branch (B, 2): column 0 the ViT, 1 CLIP)."""
    ### BEGIN SOLUTION
    tokens = torch.stack([vit_cls, clip_proj(clip_feat)], dim=1)                     # (B, 2, h)
    mixed, weights = attention(tokens, tokens, tokens, need_weights=True,
                               average_attn_weights=True)                           # (B, 2, h), (B, 2, 2)
    return mixed.mean(dim=1), weights.mean(dim=1)                                   # (B, h), (B, 2)
    ### END SOLUTION

def collapse_share(weights: torch.Tensor, level: float = 0.9) -> float:
    """(N, M) weights, rows summing to 1 → share of rows whose largest weight is ≥ level."""
    ### BEGIN SOLUTION
    return (weights.max(dim=1).values >= level).float().mean().item()
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_attention_fusion, check_collapse_share

check_attention_fusion(attention_fuse)
check_collapse_share(collapse_share)
### BEGIN HIDDEN TESTS
check_attention_fusion(attention_fuse, batch=1, vit_dim=12, clip_dim=5, heads=3, seed=30)
check_collapse_share(collapse_share, rows=30, modalities=3, level=0.8, seed=31)
check_collapse_share(collapse_share, level=0.75, weights=[[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.125, 0.875]])
### END HIDDEN TESTS''',
        uses='''# Section 7's branch weights through YOUR collapse detector (the check above them used pinned_share)
try:
    _share = float(collapse_share(weights, 0.9))
    print("✓ collapse_share(weights, 0.9) gives pinned_share's value on the test faces" if abs(_share - pinned) < 1e-6
          else f"✗ collapse_share gives {_share:.3f}, pinned_share {pinned:.3f}")
except Exception as _err:               # not written yet (NotImplementedError), or it breaks
    print(f"collapse_share raised {type(_err).__name__}: the verdict of pinned_share above stands")'''),
    # ------------------------------------------------------------------ 04 · learning rates, gradual unfreezing
    Exercise(
        "ex04_param_groups", "04_vit_fer_finetuning", after="05f23a85", points=2,
        reference=("get_optimizer_and_scheduler", "backbone_parameter_names"),
        task="""### ✎ Exercise 1 · Two learning rates

Write `two_lr_groups(model, learning_rate, backbone_lr_scale=0.1)` → a list of two AdamW
parameter groups (dicts):

* `{"name": "backbone", "params": [...], "lr": learning_rate × backbone_lr_scale}`: the pretrained
  weights — every parameter of the children whose names `model.backbone_modules` lists (here
  `("vit",)`);
* `{"name": "head", "params": [...], "lr": learning_rate}`: every other parameter.

Parameters with `requires_grad == False` are in neither group: the optimizer must not see frozen
weights.

Graded: the exact tensors in each group and each group's rate, on a small model, with other
rates and with part of the backbone frozen. Not allowed (scores 0): the lab's
`get_optimizer_and_scheduler` and `backbone_parameter_names`.

*Hint:* `model.named_parameters()` names each parameter with a dotted path that starts with the
child it belongs to.""",
        solution='''def two_lr_groups(model, learning_rate: float, backbone_lr_scale: float = 0.1) -> list[dict]:
    """[backbone group at lr × scale, head group at lr], trainable parameters only."""
    ### BEGIN SOLUTION
    prefixes = tuple(f"{name}." for name in model.backbone_modules)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"name": "backbone", "params": [p for n, p in trainable if n.startswith(prefixes)],
         "lr": learning_rate * backbone_lr_scale},
        {"name": "head", "params": [p for n, p in trainable if not n.startswith(prefixes)], "lr": learning_rate},
    ]
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_param_groups

check_param_groups(two_lr_groups)
### BEGIN HIDDEN TESTS
check_param_groups(two_lr_groups, learning_rate=3e-4, backbone_lr_scale=0.25)
check_param_groups(two_lr_groups, freeze_first=True)
### END HIDDEN TESTS'''),
    Exercise(
        "ex04_gradual_unfreezing", "04_vit_fer_finetuning", after="47541081", points=2,
        reference=("unfreeze_backbone", "strategy_stages", "lab_utils.recipes.fer"),
        task="""### ✎ Exercise 2 · Gradual unfreezing, block by block

Progressive unfreezing trains the head first and then opens the backbone **from the top down**:
the top blocks hold the most task-specific features, the bottom blocks and the embeddings the
most generic ones. Write the two pieces of such a schedule.

* `blocks_to_open(epoch, num_layers, every)`: how many top blocks train in epoch `epoch` (counted
  from 0) when the head trains alone for the first `every` epochs and one more block opens after
  each further `every` epochs, never more than `num_layers`. For `every = 2`: epochs 0 and 1 → 0
  blocks, epochs 2 and 3 → 1 block, and so on.
* `unfreeze_top_layers(model, n)`: on a `ViTForFER`-like model (`model.vit` a
  `transformers.ViTModel`, `model.classifier` the head) set `requires_grad` so that exactly these
  train: the head (always), the top `n` encoder blocks, and — when `n ≥ 1` — the final LayerNorm
  `model.vit.layernorm`. Everything else in `model.vit` (patch projection, [CLS], position
  embeddings, the lower blocks) is frozen, **whatever was trainable before the call**. The blocks
  are `encoder_layers(model.vit)` (from `lab_utils.models.fer`), bottom block first.

Graded: `blocks_to_open` epoch by epoch for several `num_layers` and `every`; `unfreeze_top_layers`
by which parameters train, on a small ViT built by the check, for several `n`, starting from a
fully trainable and from a fully frozen model. Not allowed (scores 0): the lab's
`unfreeze_backbone` and `strategy_stages`. The cell after the tests runs both on this notebook's
model.

*Hint:* write the table *epoch → blocks* for `every = 3`, `num_layers = 2` by hand before any code.
`module.requires_grad_(flag)` sets every parameter of a module at once: put the whole backbone in
one state first, then change the parts that differ.""",
        solution='''from lab_utils.models.fer import encoder_layers

def blocks_to_open(epoch: int, num_layers: int, every: int) -> int:
    """Top blocks trainable in epoch `epoch` (from 0): none for `every` epochs, then one more every `every` epochs."""
    ### BEGIN SOLUTION
    return min(num_layers, epoch // every)
    ### END SOLUTION

def unfreeze_top_layers(model, n: int) -> None:
    """Train the head, the top n encoder blocks and (n ≥ 1) the final LayerNorm; freeze the rest of model.vit."""
    ### BEGIN SOLUTION
    model.vit.requires_grad_(False)                              # embeddings, every block, the final LayerNorm
    blocks = list(encoder_layers(model.vit))                     # bottom block first
    for block in blocks[len(blocks) - n:] if n else []:
        block.requires_grad_(True)
    model.vit.layernorm.requires_grad_(n > 0)
    model.classifier.requires_grad_(True)
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_blocks_to_open, check_unfreeze_top_layers

check_blocks_to_open(blocks_to_open)
check_unfreeze_top_layers(unfreeze_top_layers)
### BEGIN HIDDEN TESTS
check_blocks_to_open(blocks_to_open, num_layers=3, every=1)
check_blocks_to_open(blocks_to_open, num_layers=12, every=3)
check_unfreeze_top_layers(unfreeze_top_layers, num_layers=3, ns=(3, 1, 0, 2))
### END HIDDEN TESTS''',
        uses='''# YOUR gradual unfreezing on this notebook's ViTForFER: what trains with each number of open blocks
_flags = {name: p.requires_grad for name, p in model.named_parameters()}      # put back below: model is unchanged
try:
    _stages = {}
    for _n in range(model.num_layers + 1):
        unfreeze_top_layers(model, _n)
        _stages[f"top {_n} blocks open"] = count_parameters(model)
    _plan = [blocks_to_open(_epoch, model.num_layers, 3) for _epoch in range(cfg.train.epochs)]
    print(pd.DataFrame(_stages).T.to_string())
    print(f"blocks open in each of the {cfg.train.epochs} epochs, one more every 3:", _plan)
except Exception as _err:               # not written yet (NotImplementedError), or it breaks
    print(f"unfreeze_top_layers / blocks_to_open raised {type(_err).__name__}: section 4 showed the lab's "
          "unfreeze_backbone instead")
finally:
    for _name, _p in model.named_parameters():
        _p.requires_grad_(_flags[_name])'''),
    # ------------------------------------------------------------------ 05 · leakage, the 6-channel stem
    Exercise(
        "ex05_leaked_subjects", "05_rgb_thermal_fusion", after="2f796b25", points=1,
        reference=("check_subject_leakage",),
        task="""### ✎ Exercise 1 · Which subjects leak?

Write `leaked_subjects(subjects_by_split)`: a dict `{split name: set of subject ids}` (any number
of splits, any names) → the **set** of subjects that appear in two or more of the splits. The id
`-1` means "subject unknown" and is never reported.

Graded: on several split layouts, including four splits and unknown subjects. Not allowed (scores
0): the lab's `check_subject_leakage`.

*Hint:* a subject in train and val leaks as much as one in train and test: every pair of splits
matters. Counting in how many splits each subject appears answers it for all pairs at once.""",
        solution='''from collections import Counter

def leaked_subjects(subjects_by_split: dict) -> set:
    """{split: set of subjects} → the subjects found in two or more splits (-1, unknown, left out)."""
    ### BEGIN SOLUTION
    counts = Counter(s for subjects in subjects_by_split.values() for s in set(subjects))
    return {s for s, n in counts.items() if n > 1 and s != -1}
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_leaked_subjects

check_leaked_subjects(leaked_subjects)
### BEGIN HIDDEN TESTS
check_leaked_subjects(leaked_subjects, {"train": {-1, 1, 2, 3}, "val": {3, 4, 5}, "test": {-1, 6}})
check_leaked_subjects(leaked_subjects, {"a": {1, 2}, "b": {2, 3}, "c": {3, 4}, "d": {4, 1, 9}})
### END HIDDEN TESTS'''),
    Exercise(
        "ex05_six_channel_stem", "05_rgb_thermal_fusion", after="14580c40", points=2,
        reference=("six_channel_patch_embedding", "EarlyFusionViT", "create_multimodal_vit_model"),
        task="""### ✎ Exercise 2 · A 6-channel stem that keeps the pretrained scale

Write `six_channel_stem(conv)`: from the pretrained patch embedding `conv`, a
`Conv2d(3, h, p, stride=p)` (with or without bias), build a new `Conv2d(6, h, p, stride=p)` for
`[rgb ; thermal]` (RGB in input channels 0–2, thermal in 3–5) whose output on `[x ; x]` equals
`conv(x)` for every image `x`, and that treats both modalities alike: both halves of its weight
equal. It has a bias exactly when `conv` has one; `conv` is left unchanged.

Graded: `new([x ; x])` against `conv(x)` to 1e-5, the layer's shape, kernel, stride and bias, with
and without a bias. Not allowed (scores 0): the lab's `six_channel_patch_embedding`,
`EarlyFusionViT`, `create_multimodal_vit_model`.

*Hint:* write what the new convolution computes on `[x ; x]` as a sum over its two halves, and
solve for the halves; the bias is added once. Copy weights under `torch.no_grad()`.""",
        solution='''import torch
from torch import nn

def six_channel_stem(conv: nn.Conv2d) -> nn.Conv2d:
    """Conv2d(3, h, p, stride=p) → Conv2d(6, h, p, stride=p) with W/2 in both halves, same bias."""
    ### BEGIN SOLUTION
    new = nn.Conv2d(2 * conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(torch.cat([conv.weight, conv.weight], dim=1) / 2)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new
    ### END SOLUTION''',
        tests='''from lab_utils.exercises import check_six_channel_stem

check_six_channel_stem(six_channel_stem)
### BEGIN HIDDEN TESTS
check_six_channel_stem(six_channel_stem, bias=False, seed=50)
### END HIDDEN TESTS'''),
)


QUESTIONS: tuple[Question, ...] = (
    # ------------------------------------------------------------------ 01
    Question(
        "q01_position_embeddings", "01_vit_patching", after="8329e695", points=2,
        prompt="""### ✎ Question 1 · What did the position embeddings learn? (2 points)

Answer in the cell below, from **your** figure above.

(a) For the corner patch (0, 0) and for a patch in the middle of the grid: which positions have
the most similar embeddings?
(b) The model started from random position vectors and was never told the grid. What in the task
and in training can make the embeddings of neighbouring positions similar?
(c) Suppose the model had *no* position embeddings. What would its `[CLS]` output do if we
shuffled the order of an image's patch tokens — and what could the model then not tell apart?""",
        answer="""**Model answer.** (a) From the own figure. In the quick profile's short run on a 4 × 4 grid the
pattern is noisy: some panels are redder at a grid neighbour (left/right, above/below), many are
as red at far positions; a clean pattern — red around the own place, blue far from it — needs long
training on much data (ViT-B/16 after ImageNet). Full marks for an accurate reading, either way. (b) Only the gradient of the
task: a shape covers several neighbouring patches and appears anywhere, so neighbouring positions
see correlated content and have to be treated alike by attention; training pushes their
embeddings the same way. The 2-D layout is learnt from the data, not built in. (c) Without
position embeddings self-attention is permutation-equivariant: shuffling the tokens shuffles the
outputs the same way, so the `[CLS]` output (a weighted sum over all tokens) does not change. The
model sees a *bag* of patches: it could not tell where something is, nor two images made of the
same patches in another arrangement.

**Rubric (2 points).** 2 points: (a) read from the own figure (own position and neighbours
brightest), (b) the structure is learnt from the data through training, (c) the `[CLS]` output is
unchanged (permutation invariance, a bag of patches) with a consequence. 1 point: two of the three
right, or all three vague. 0 points: says the layout was given to the model, or does not refer to
the figure."""),
    Question(
        "q01_attention_maps", "01_vit_patching", after="f58d491e", points=2,
        prompt="""### ✎ Question 2 · Where does `[CLS]` really look? (2 points)

(a) In your figures of section 8, compare the last layer's head-averaged map with the rollout for
one of the two images: which patches does each emphasise?
(b) Explain with the residual stream of the encoder block (section 4) why the last layer's map
can be nearly uniform although the model classifies the shape correctly.
(c) Propose one experiment with this notebook's trained `model` that would test whether the
patches the rollout highlights actually drive the prediction.""",
        answer="""**Model answer.** (a) The last layer's average is close to uniform (colours near 1, a fair
share), with at most a mild preference; the rollout concentrates on the patches the shape covers.
(b) Every block *adds* its result to the residual stream, so by the last layer each token already
carries information about the shape, mixed in by the earlier layers: `[CLS]` can read it from any
token. One layer's attention says where that layer reads from, not where the information
originated. The rollout multiplies the layers' (head-averaged) attention, with the identity for the
residual path, to trace the flow back to the input patches. (c) An intervention: occlude the
patches the rollout ranks highest (replace them by background or the mean patch) and measure the
drop in the predicted class's probability, compared with occluding as many low-ranked patches;
a large gap supports the map. (Gradient × input attributions are another check.)

**Rubric (2 points).** 2 points: a correct reading of the own figures, the residual-stream argument,
and a testable intervention with a comparison. 1 point: two of these three. 0 points: treats an
attention map as proof of what the model uses, with no argument."""),
    # ------------------------------------------------------------------ 02
    Question(
        "q02_temperature", "02_clip_contrastive", after="ad73fcd9", points=2,
        prompt="""### ✎ Question 1 · The loss, the batch size and the temperature (2 points)

(a) Section 4's loss curve starts near ln(batch size). Why exactly that number? What would the
starting loss be with batches of 32?
(b) Your run printed its final temperature: did it move up or down from the initial 0.07? What does
a lower temperature do to the softmax over a row of the similarity matrix, and to how strongly the
loss pushes on the hardest wrong captions (the near-identical faces `group_size` puts in a batch)?""",
        answer="""**Model answer.** (a) With random embeddings the B similarities of a row are about equal, so
the softmax gives every caption ≈ 1/B and −log(1/B) = ln B; the same holds per column, and the
average of the two directions is ln B too. ln 128 ≈ 4.85 for this batch size; with B = 32 it
would start at ln 32 ≈ 3.47. (b) In the quick profile it went slightly down (e.g. 0.07 → 0.065; the
answer quotes the own value), i.e. the scale 1/τ went up: the model sharpens its softmax as it
becomes more certain. A lower temperature multiplies the differences between logits: the softmax
gets peakier and its mass — and the gradient, which pushes each wrong caption j away in
proportion to its probability p_j — concentrates on the few most similar wrong captions, the hard
negatives, while easy ones are almost ignored. Too low a temperature makes training unstable; CLIP
caps the scale at 100.

**Rubric (2 points).** 2 points: ln B from a uniform softmax with the value for B = 32, and the
direction of the own temperature with its effect (sharper softmax, gradient on hard negatives).
1 point: one of the two parts right. 0 points: neither."""),
    Question(
        "q02_recall_gap", "02_clip_contrastive", after="96bc5298", points=1,
        prompt="""### ✎ Question 2 · What fills the gap between R@1 and R@10? (1 point)

Your table of section 5 shows image → text R@10 far above R@1. Using the pictures above (the
faces and captions ranked above the right one), say what kind of mistakes fill that gap. Then
explain why chance Recall@K is K / N.""",
        answer="""**Model answer.** The misses are near misses: what is ranked above the right answer shares
most of the attributes the caption names (background, hair, skin tone, glasses) and differs in
the one that is hardest to see at 32 px, usually the expression (sad, angry, disgusted and neutral
look alike). The right caption is then in the top 10 but not first. A random ranking puts the one
right caption at a uniformly random rank among N, so P(rank ≤ K) = K / N.

**Rubric (1 point).** 1 point: near misses tied to the pictures (shared attributes, the expression
hardest to see) and K / N from a uniformly random rank. 0 points: either part missing."""),
    # ------------------------------------------------------------------ 03
    Question(
        "q03_fusion_gain", "03_hybrid_vit_clip", after="c0b958cf", points=2,
        prompt="""### ✎ Question · Why does fusion gain so little, and what helps? (2 points)

(a) In your run, by how many macro-F1 points did the plain fusion beat (or trail) the better
single branch, and which remedy of section 8 lifted it most?
(b) Explain with *modality imbalance* why training the ViT alone first helps: what happens to the
ViT's gradient when the fusion trains both branches together from the start?
(c) Give one reason why that remedy's lead is not an entirely fair comparison.""",
        answer="""**Model answer.** (a) The own numbers, e.g. plain concat −0.5 points, ViT trained alone first
+6.7, auxiliary ViT loss +4.9 (quick profile, over 24 runs: −0.2 ± 1.8 for the plain fusion, a
spread larger than most gains of a single run). (b) The frozen CLIP features separate the classes
from the first step, so the classifier fits the training set through them; the loss falls fast,
and the gradient that reaches the ViT through the classifier (proportional to the remaining error)
shrinks before the ViT has learnt expression features; early stopping then ends the run. Trained
alone first, the ViT gets the whole gradient until it has learnt what it can; the fusion then
combines two informative branches. (c) It spends more compute — a whole extra ViT training run —
so part of its lead could be budget (section 8's control, the plain fusion for twice the epochs,
measures how much: a point or two, against several for the staged remedy); and one run's
difference of a few points is within the noise of another seed or split.

**Rubric (2 points).** 2 points: own numbers, the gradient-starvation mechanism, and the budget
(or noise) caveat. 1 point: two of the three. 0 points: none of them."""),
    # ------------------------------------------------------------------ 04
    Question(
        "q04_strategies", "04_vit_fer_finetuning", after="38ece0fb", points=2,
        prompt="""### ✎ Question 1 · Which strategy, and why? (2 points)

(a) From your table of section 7: which strategy scored best, which trained fastest, and by how
much do they differ?
(b) The quick profile's stand-in backbone was pretrained on another task: how open the eyes are
(narrow / relaxed / wide, other people). Why does that leave head-only training behind full
fine-tuning here, and why would you expect the same with the full profile's ImageNet-21k backbone?
(c) Why does progressive unfreezing open the top blocks first rather than the bottom ones?""",
        answer="""**Model answer.** (a) The own numbers, e.g. full fine-tuning ≈ .50 macro-F1 against
progressive ≈ .44 and head only ≈ .43, but head only trained in about a second (cached features)
against many seconds. (b) The stand-in's frozen features encode what its pretraining needed —
where the eyes are and how open — which separates only some expressions (wide eyes: surprise,
fear; narrow: anger, disgust, happiness); nothing was trained to read the brows' tilt or the mouth.
A head on frozen features can only recombine what is there, so the backbone itself must adapt,
which only the strategies that train it can do. ImageNet-21k features were likewise never trained
to separate expressions, so the same holds (expected: head only clearly lower in the full profile). (c) Lower blocks compute generic
features (edges, textures, parts) that transfer across tasks; the top blocks are the most
task-specific and need to change most. Opening them first adapts what must change while the
generic layers are kept, which limits forgetting and costs less; training the head first keeps a
random head's large gradients away from the pretrained weights.

**Rubric (2 points).** 2 points: own numbers with the speed/score trade-off, the argument about
what the frozen features already know, and top-down unfreezing explained by generic vs specific
layers. 1 point: two of the three. 0 points: none."""),
    Question(
        "q04_checkpointing", "04_vit_fer_finetuning", after="b19d6fda", points=1,
        prompt="""### ✎ Question 2 · What does gradient checkpointing cost? (1 point)

Read your table above: by what factor did checkpointing cut activation memory, and by what factor
did it slow a training step? Each block's forward runs twice with checkpointing — why does the step
then take much less than twice as long?""",
        answer="""**Model answer.** The own numbers, e.g. activations × 0.15, step time × 1.2. Only the
*forward* pass is repeated, and a training step is forward + backward, where the backward costs
about twice the forward: F + 2F = 3F without checkpointing, F + F + 2F = 4F with it, at most
≈ 1.33× — less in practice, since the data, the loss and the optimizer step are not repeated.

**Rubric (1 point).** 1 point: own factors and the argument that only the forward (about a third of
a step) is recomputed. 0 points: otherwise."""),
    # ------------------------------------------------------------------ 05
    Question(
        "q05_hide_modality", "05_rgb_thermal_fusion", after="3840c0c1", points=2,
        prompt="""### ✎ Question 1 · Which modality does each fusion lean on? (2 points)

(a) From your table of points lost: which modality does each fusion lean on most? Does that agree
with which single modality scored higher in section 4?
(b) Why is hiding a modality (its images → the mean image) a stronger test of what a model uses
than reading the attention weights below?
(c) What would the table look like for a fusion that has collapsed onto thermal?""",
        answer="""**Model answer.** (a) The own numbers, e.g. late attention loses 31 points without RGB and 63
without thermal, so it leans on thermal — in line with thermal alone scoring higher than RGB alone
(.56 vs .45); the early fusions lose more without RGB. (b) Hiding is an intervention on the input
and measures the effect on the output directly; a weight only says how a softmax scales a
feature, not whether the head uses it (a feature can matter at weight ½, feature sizes can make
up for weights, concat and early fusions have no weights at all). The mean image keeps the usual
scale, so the drop measures lost information rather than a shift of the input distribution.
(c) Hiding RGB would cost about 0 points, hiding thermal most of the score (towards chance), and
the fused model would score about what thermal alone scores.

**Rubric (2 points).** 2 points: own numbers read correctly and compared with section 4, the
intervention-vs-weights argument, and the collapsed table described. 1 point: two of the three.
0 points: none."""),
    Question(
        "q05_weight_slots", "05_rgb_thermal_fusion", after="8d64318f", points=1,
        prompt="""### ✎ Question 2 · Weights in their own slots (1 point)

Late attention scales each feature by its weight *in its own slot*:
`[2·w_rgb·f_rgb ; 2·w_thermal·f_thermal]`. Notebook 03's attention fusion instead averaged its two
tokens into one vector. Using your per-class weights above, explain what the head could no longer
do if the two weighted features were summed into one vector.""",
        answer="""**Model answer.** Summed, RGB and thermal numbers share the same slots: the head sees only the
mix and cannot tell which modality a value came from, so it cannot use modality-specific cues
separately — e.g. read the thermal nose for one class and the RGB mouth for another, as the
per-class weights (say thermal ≈ .62 for happy, ≈ .47 for surprise) suggest it does. A change of
weight then changes the meaning of every slot at once. In this lab that pooled version trailed even
the single modalities on most seeds.

**Rubric (1 point).** 1 point: the head can no longer tell the modalities apart (shared slots),
linked to the own per-class weights. 0 points: otherwise."""),
)


Item = Union[Exercise, Question]


def exercises_for(notebook: str) -> list[Exercise]:
    """The exercises of one notebook (its file stem, e.g. ``01_vit_patching``), in order."""
    return [e for e in EXERCISES if e.notebook == notebook]


def questions_for(notebook: str) -> list[Question]:
    """The written questions of one notebook, in order."""
    return [q for q in QUESTIONS if q.notebook == notebook]


def _stem(grade_id: str) -> str:
    return grade_id.replace("_", "-")


def exercise_cells(ex: Exercise) -> list[nbformat.NotebookNode]:
    """The task, solution and test cells of ``ex`` with their tags, ids and nbgrader metadata
    (the test cell is locked and worth ``ex.points``), then its ``uses`` cell if it has one."""
    stem = _stem(ex.grade_id)
    task = new_markdown_cell(ex.task, id=f"{stem}-task", metadata={"tags": [EXERCISE_TAG]})
    solution = new_code_cell(ex.solution, id=f"{stem}-solution", metadata={
        "tags": [EXERCISE_TAG],
        "nbgrader": {"grade": False, "grade_id": f"{ex.grade_id}_solution", "locked": False,
                     "schema_version": 3, "solution": True}})
    tests = new_code_cell(ex.tests, id=f"{stem}-tests", metadata={
        "tags": [EXERCISE_TAG],
        "nbgrader": {"grade": True, "grade_id": ex.grade_id, "locked": True, "points": ex.points,
                     "schema_version": 3, "solution": False}})
    cells = [task, solution, tests]
    if ex.uses:
        cells.append(new_code_cell(ex.uses, id=f"{stem}-uses", metadata={"tags": [USES_TAG]}))
    return cells


def question_cells(q: Question) -> list[nbformat.NotebookNode]:
    """The prompt and the (manually graded) answer cell of ``q``; the answer holds the model
    answer and rubric between ``### BEGIN SOLUTION`` and ``### END SOLUTION``."""
    stem = _stem(q.grade_id)
    prompt = new_markdown_cell(q.prompt, id=f"{stem}-prompt", metadata={"tags": [QUESTION_TAG]})
    answer = new_markdown_cell(f"### BEGIN SOLUTION\n{q.answer}\n### END SOLUTION", id=f"{stem}-answer", metadata={
        "tags": [QUESTION_TAG],
        "nbgrader": {"grade": True, "solution": True, "locked": False, "points": q.points,
                     "grade_id": q.grade_id, "schema_version": 3, "task": False}})
    return [prompt, answer]


def item_cells(item: Item) -> list[nbformat.NotebookNode]:
    """The cells of an exercise or a question."""
    return exercise_cells(item) if isinstance(item, Exercise) else question_cells(item)


def items_for(notebook: str) -> list[Item]:
    """The exercises, then the questions, of one notebook: the order of items after the same cell."""
    return [*exercises_for(notebook), *questions_for(notebook)]


@functools.lru_cache(maxsize=1)
def _managed_ids() -> frozenset[str]:
    return frozenset(c.id for item in (*EXERCISES, *QUESTIONS) for c in item_cells(item))


def is_managed(cell: nbformat.NotebookNode) -> bool:
    """A cell that this file owns: tagged ``exercise``, ``question`` or ``uses-exercise``, or
    carrying the id of one of this file's cells (an editor may have dropped its tags)."""
    tags = cell.get("metadata", {}).get("tags", [])
    return any(t in MANAGED_TAGS for t in tags) or cell.get("id") in _managed_ids()


def _same(a: nbformat.NotebookNode, b: nbformat.NotebookNode) -> bool:
    """Same type, source, tags and nbgrader marks (other metadata is an editor's or a runner's state)."""
    def key(c):
        meta = c.get("metadata", {})
        return c.cell_type, c.source, list(meta.get("tags", [])), meta.get("nbgrader")
    return key(a) == key(b)


def synced_cells(nb: nbformat.NotebookNode, notebook: str) -> list[nbformat.NotebookNode]:
    """The cells ``nb`` should have: its own cells in their order, each followed by the items
    (exercises, then questions, in this file's order) whose ``after`` is its id. A managed cell
    whose content is already right is kept as it is (outputs included); a changed one is
    replaced by its new version (outputs cleared); managed cells no longer defined are left out.

    Raises:
        KeyError: an item follows a cell that is not in the notebook (or is itself managed).
    """
    own = [c for c in nb.cells if not is_managed(c)]
    own_ids = {c.get("id") for c in own}
    existing = {c.get("id"): c for c in nb.cells if is_managed(c)}
    blocks: dict[str, list[nbformat.NotebookNode]] = {}
    for item in items_for(notebook):
        if item.after not in own_ids:
            raise KeyError(f"{notebook}: {item.grade_id} follows cell {item.after!r}, which is not a cell of the "
                           "notebook (or is itself an exercise, question or uses cell); set its `after` in "
                           "lab_tools/grading/cells.py to the id of the cell that introduces it")
        for cell in item_cells(item):
            old = existing.get(cell.id)
            blocks.setdefault(item.after, []).append(old if old is not None and _same(old, cell) else cell)
    out: list[nbformat.NotebookNode] = []
    for cell in own:
        out.append(cell)
        out.extend(blocks.get(cell.get("id"), []))
    return out


def sync_notebook(path: Path) -> list[str]:
    """Make the exercise, question and uses cells of notebook ``path`` exactly what this file
    says (see ``synced_cells``); every other cell stays as it is. Writes the notebook only when
    something changed; returns what changed (``"inserted <id>"``, ``"replaced <id>"``,
    ``"removed <id>"``, ``"moved <id>"``), empty when it already matched."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    new = synced_cells(nb, path.stem)
    before = [c.get("id") for c in nb.cells]
    after = [c.get("id") for c in new]
    kept = {id(c) for c in nb.cells}
    changes = [f"removed {i}" for i in before if i not in after]
    for at, cell in enumerate(new):
        if cell.id not in before:
            changes.append(f"inserted {cell.id}")
        elif id(cell) not in kept:
            changes.append(f"replaced {cell.id}")
        elif is_managed(cell):
            old_at = before.index(cell.id)
            if (before[old_at - 1] if old_at else None) != (after[at - 1] if at else None):
                changes.append(f"moved {cell.id}")
    if changes or before != after:
        nb.cells = new
        nbformat.validate(nb)
        nbformat.write(nb, path)
    return changes


def insert_exercises(path: Path) -> list[str]:
    """Insert the exercises and questions (and uses cells) that notebook ``path`` lacks, each
    after its ``after`` cell and after the items already there; returns the ids of the inserted
    cells. Existing cells are never changed (``sync_notebook`` also updates and removes).

    Raises:
        KeyError: if a cell an item should follow is not in the notebook.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    inserted: list[str] = []
    for item in items_for(path.stem):
        ids = [c.get("id") for c in nb.cells]
        missing = [c for c in item_cells(item) if c.id not in ids]
        if not missing:
            continue
        if item.after not in ids:
            raise KeyError(f"{path.name}: {item.grade_id} follows cell {item.after!r}, which is not in the "
                           "notebook; set its `after` in lab_tools/grading/cells.py to the id of the cell that "
                           "introduces it")
        present = [ids.index(c.id) for c in item_cells(item) if c.id in ids]
        if present:                      # some of its cells are there (a uses cell was added): right after them
            at = max(present) + 1
        else:                            # after its cell and the items already following that cell
            at = ids.index(item.after) + 1
            while at < len(nb.cells) and is_managed(nb.cells[at]):
                at += 1
        nb.cells[at:at] = [copy.deepcopy(c) for c in missing]
        inserted += [c.id for c in missing]
    if inserted:
        nbformat.write(nb, path)
    return inserted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sync", action="store_true",
                      help="make the exercise, question and uses cells exactly what cells.py says")
    mode.add_argument("--check", action="store_true",
                      help="change nothing; exit 1 if a notebook's cells differ from cells.py")
    args = parser.parse_args(argv)
    differs = False
    for path in args.notebooks:
        if args.check:
            nb = nbformat.read(path, as_version=4)
            wanted = synced_cells(nb, path.stem)
            same = [c.get("id") for c in wanted] == [c.get("id") for c in nb.cells] and all(
                a is b for a, b in zip(wanted, nb.cells))
            differs |= not same
            print(f"{path.name}: {'matches cells.py' if same else 'differs from cells.py: run --sync'}")
        elif args.sync:
            changes = sync_notebook(path)
            print(f"{path.name}: {'; '.join(changes) if changes else 'already in sync'}")
        else:
            added = insert_exercises(path)
            print(f"{path.name}: {', '.join(added) if added else 'every exercise and question already there'}")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
