"""The exercise cells inserted into the notebooks, and the nbgrader metadata they carry.

Each exercise is three cells placed after an existing cell (``after``): a markdown task with
a hint, a solution cell and a locked, graded test cell. All three are tagged ``exercise``
(which is how the grader finds a student's exercise cells) and carry stable ids.

    python -m lab_utils.grading.cells notebooks/*.ipynb   # insert the missing exercises

inserts the exercises a notebook does not have yet (it never edits an existing cell), so the
cells below are the one place to change an exercise; re-run it on a notebook whose exercise
cells were removed.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

EXERCISE_TAG = "exercise"


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


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "ex01_patchify", "01_vit_patching", after="35c24923", points=2,
        task="""### ✎ Exercise 1 · Patchify, written by you

Write `my_patchify(images, patch_size)`: a batch `(B, C, H, W)` becomes `(B, N, C·p·p)`, the
patches row by row (left to right, then top to bottom), each flattened in `(C, p, p)` order —
exactly what `lab_utils.models.patchify` returns. An image whose side `p` does not divide must
raise a `ValueError` that says so.

*Hint:* three tensor moves, as in section 2: `reshape` to `(B, C, H/p, p, W/p, p)`, `permute`
the two patch-grid axes to the front and `(C, p, p)` to the back, `reshape` to `(B, N, C·p·p)`.
Check `H % p` and `W % p` first.""",
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
        tests='''from lab_utils.grading.exercises import check_patchify, check_patchify_rejects

check_patchify(my_patchify)
check_patchify_rejects(my_patchify)
### BEGIN HIDDEN TESTS
check_patchify(my_patchify, shape=(3, 1, 12, 8), patch_size=4, seed=10)
check_patchify(my_patchify, shape=(1, 3, 16, 16), patch_size=16, seed=11)
### END HIDDEN TESTS'''),
    Exercise(
        "ex01_cls_positions", "01_vit_patching", after="a49fb8d6", points=1,
        task="""### ✎ Exercise 2 · [CLS] in front, positions added

Write `add_cls_and_positions(tokens, cls_token, pos_embed)`: patch tokens `(B, N, D)`, a
learned `[CLS]` vector `(1, 1, D)` and position embeddings `(1, 1+N, D)` → the encoder's input
`(B, 1+N, D)`, as the cell above builds it for one image — but for any batch size `B`.

*Hint:* `cls_token.expand(B, -1, -1)` gives every image its own copy; `torch.cat(…, dim=1)` puts it
**in front** of the patches; then add `pos_embed` (broadcast over the batch).""",
        solution='''import torch

def add_cls_and_positions(tokens: torch.Tensor, cls_token: torch.Tensor, pos_embed: torch.Tensor) -> torch.Tensor:
    """(B, N, D), (1, 1, D), (1, 1+N, D) → (B, 1+N, D): [CLS] first, then the patches, plus positions."""
    ### BEGIN SOLUTION
    cls = cls_token.expand(tokens.shape[0], -1, -1)   # [B, 1, D]
    return torch.cat([cls, tokens], dim=1) + pos_embed  # [B, 1+N, D]
    ### END SOLUTION''',
        tests='''from lab_utils.grading.exercises import check_cls_and_positions

check_cls_and_positions(add_cls_and_positions)
### BEGIN HIDDEN TESTS
check_cls_and_positions(add_cls_and_positions, batch=5, num_patches=9, dim=4, seed=12)
### END HIDDEN TESTS'''),
    Exercise(
        "ex02_contrastive", "02_clip_contrastive", after="300e655c", points=2,
        task="""### ✎ Exercise · The symmetric contrastive loss

Write `my_contrastive_loss(image_embeds, text_embeds, scale)` for L2-normalised `(B, D)`
embeddings whose row `i` belongs together: the CLIP loss of `lab_utils.training.contrastive_loss`.

*Hint:* `logits = scale * image_embeds @ text_embeds.T` is `(B, B)` with the true pairs on the
diagonal, so the targets are `torch.arange(B)`. `F.cross_entropy(logits, targets)` is the
image → text direction (rows); the text → image direction is the same on `logits.T`. CLIP
averages the two.""",
        solution='''import torch
import torch.nn.functional as F

def my_contrastive_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, scale) -> torch.Tensor:
    """(B, D), (B, D) L2-normalised, a scalar scale → the symmetric InfoNCE loss (a scalar)."""
    ### BEGIN SOLUTION
    logits = scale * image_embeds @ text_embeds.T           # (B, B): image i vs caption j
    targets = torch.arange(logits.shape[0])                 # the diagonal holds the true pairs
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    ### END SOLUTION''',
        tests='''from lab_utils.grading.exercises import check_contrastive_loss, check_contrastive_symmetric

check_contrastive_loss(my_contrastive_loss)
### BEGIN HIDDEN TESTS
check_contrastive_loss(my_contrastive_loss, batch=5, dim=12, scale=3.0, seed=20)
check_contrastive_symmetric(my_contrastive_loss)
### END HIDDEN TESTS'''),
    Exercise(
        "ex02_recall_at_k", "02_clip_contrastive", after="75349e22", points=1,
        task="""### ✎ Exercise · Recall@K from a similarity matrix

Write `my_recall_at_k(sim, k)`: `sim` is an `(N, N)` image × caption similarity matrix (row `i`
= image `i`, column `j` = caption `j`, the true pairs on the diagonal). Return the
**image → text** Recall@K: the fraction of rows whose own (diagonal) entry is among the row's
`k` largest — the number `lab_utils.metrics.recall_at_k` reports above.

*Hint:* `sim.topk(k, dim=1).indices` is `(N, k)`: the k best captions of each image. Compare it
with each row's own index (`torch.arange(N)[:, None]`), `.any(dim=1)` per row, then average.""",
        solution='''import torch

def my_recall_at_k(sim: torch.Tensor, k: int) -> float:
    """(N, N) similarities, true pairs on the diagonal → image→text Recall@K, a fraction in [0, 1]."""
    ### BEGIN SOLUTION
    top = sim.topk(k, dim=1).indices                      # (N, k): the k best captions of each image
    own = torch.arange(sim.shape[0])[:, None]             # (N, 1): each image's own caption
    return (top == own).any(dim=1).float().mean().item()
    ### END SOLUTION''',
        tests='''from lab_utils.grading.exercises import check_recall_at_k

check_recall_at_k(my_recall_at_k)
### BEGIN HIDDEN TESTS
check_recall_at_k(my_recall_at_k, n=40, k=1, seed=21)
check_recall_at_k(my_recall_at_k, n=15, k=5, seed=22)
### END HIDDEN TESTS'''),
    Exercise(
        "ex03_standardize", "03_hybrid_vit_clip", after="50364de1", points=1,
        task="""### ✎ Exercise · Standardise the CLIP features, with training statistics only

Before fusing, the model shifts and scales each of the `d` CLIP numbers to mean 0 and std 1
over the **training** faces (`standardize_clip` in section 5). Write
`standardize(train_embeds, embeds)`: `(N, d)` training embeddings and any `(M, d)` embeddings →
`(embeds − mean) / (std + 1e-6)`, with the mean and std of each feature (column) computed on
`train_embeds`.

*Hint:* `train_embeds.mean(dim=0)` and `train_embeds.std(dim=0)` are `(d,)` and broadcast over
the rows of `embeds`. Statistics from the embeddings being transformed would let the test
images leak into the model; the `1e-6` keeps a constant feature finite.""",
        solution='''import torch

def standardize(train_embeds: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
    """(N, d) training embeddings, (M, d) embeddings → (M, d), each feature standardised with training statistics."""
    ### BEGIN SOLUTION
    mean = train_embeds.mean(dim=0)                   # (d,): one per feature, training rows only
    std = train_embeds.std(dim=0)                     # (d,)
    return (embeds - mean) / (std + 1e-6)
    ### END SOLUTION''',
        tests='''from lab_utils.grading.exercises import check_standardize

check_standardize(standardize)
### BEGIN HIDDEN TESTS
check_standardize(standardize, n_train=30, n_other=9, dim=4, seed=31)
check_standardize(standardize, constant_feature=True, seed=32)
### END HIDDEN TESTS'''),
    Exercise(
        "ex03_attention_fusion", "03_hybrid_vit_clip", after="a6213fda", points=2,
        task="""### ✎ Exercise · The attention fusion's forward

Write `attention_fuse(vit_cls, clip_feat, clip_proj, attention)`: the ViT's [CLS] vector
`(B, h)` and the (standardised) CLIP feature `(B, d)` → the fused feature `(B, h)` that the
classifier reads, as the model above computes it. `clip_proj` is an `nn.Linear(d, h)` and
`attention` an `nn.MultiheadAttention(h, heads, batch_first=True)`.

*Hint:* project CLIP to `h`, `torch.stack` the two vectors into a 2-token sequence `(B, 2, h)`,
let the tokens attend to each other (`attention(tokens, tokens, tokens)` returns the outputs and
the weights), and average the two output tokens.""",
        solution='''import torch

def attention_fuse(vit_cls: torch.Tensor, clip_feat: torch.Tensor, clip_proj, attention) -> torch.Tensor:
    """(B, h), (B, d) → (B, h): the mean of the two tokens after self-attention."""
    ### BEGIN SOLUTION
    tokens = torch.stack([vit_cls, clip_proj(clip_feat)], dim=1)   # (B, 2, h)
    mixed, _ = attention(tokens, tokens, tokens)                   # (B, 2, h)
    return mixed.mean(dim=1)                                       # (B, h)
    ### END SOLUTION''',
        tests='''from lab_utils.grading.exercises import check_attention_fuse

check_attention_fuse(attention_fuse)
### BEGIN HIDDEN TESTS
check_attention_fuse(attention_fuse, batch=1, vit_dim=12, clip_dim=5, heads=3, seed=30)
### END HIDDEN TESTS'''),
    Exercise(
        "ex04_lr_schedule", "04_vit_fer_finetuning", after="8b800428", points=2,
        task="""### ✎ Exercise · Warm-up, then cosine decay

Write `lr_multiplier(step, warmup_steps, total_steps)`: the factor by which the scheduler of
`get_optimizer_and_scheduler` multiplies each group's learning rate at `step` — the curve plotted
above. It rises linearly from 0 to 1 over the warm-up, then follows half a cosine from 1 down to 0
at `total_steps`.

*Hint:* during the warm-up (`step < warmup_steps`) it is `step / warmup_steps`; after it,
`progress = (step − warmup_steps) / (total_steps − warmup_steps)` and the factor is
`0.5 · (1 + cos(π · progress))`. Guard both divisions with `max(1, …)` so that
`warmup_steps = 0` works.""",
        solution='''import math

def lr_multiplier(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0 to 1, then a half cosine from 1 to 0 at total_steps."""
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    ### END SOLUTION''',
        tests='''from lab_utils.grading.exercises import check_lr_multiplier

check_lr_multiplier(lr_multiplier)
### BEGIN HIDDEN TESTS
check_lr_multiplier(lr_multiplier, warmup_steps=0, total_steps=20)
check_lr_multiplier(lr_multiplier, warmup_steps=3, total_steps=7)
### END HIDDEN TESTS'''),
    Exercise(
        "ex04_param_groups", "04_vit_fer_finetuning", after="05f23a85", points=2,
        task="""### ✎ Exercise · Two learning rates

Write `two_lr_groups(model, learning_rate, backbone_lr_scale=0.1)`: the parameter groups that
`get_optimizer_and_scheduler` gives AdamW — `{"name": "backbone", "params": […], "lr":
learning_rate × backbone_lr_scale}` for the pretrained weights and `{"name": "head", "params":
[…], "lr": learning_rate}` for the rest. Frozen weights stay out.

*Hint:* the backbone is every child named in `model.backbone_modules` (here `("vit",)`): a
parameter belongs to it when its name (from `model.named_parameters()`) starts with `"vit."`.
Skip parameters with `requires_grad == False`.""",
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
        tests='''from lab_utils.grading.exercises import check_param_groups

check_param_groups(two_lr_groups)
### BEGIN HIDDEN TESTS
check_param_groups(two_lr_groups, learning_rate=3e-4, backbone_lr_scale=0.25)
check_param_groups(two_lr_groups, freeze_first=True)
### END HIDDEN TESTS'''),
    Exercise(
        "ex05_leaked_subjects", "05_rgb_thermal_fusion", after="2f796b25", points=1,
        task="""### ✎ Exercise · Which subjects leak?

Write `leaked_subjects(subjects_by_split)`: a dict `{split name: set of subject ids}` (any number
of splits) → the **set** of subjects that appear in more than one split, i.e. the subjects
`check_subject_leakage` reports above. The id `-1` means "subject unknown" and never counts.

*Hint:* a subject in train and val leaks as much as one in train and test: check every pair of
splits, or count in how many splits each subject appears (`collections.Counter` over the sets).""",
        solution='''from collections import Counter

def leaked_subjects(subjects_by_split: dict) -> set:
    """{split: set of subjects} → the subjects found in two or more splits (-1, unknown, left out)."""
    ### BEGIN SOLUTION
    counts = Counter(s for subjects in subjects_by_split.values() for s in set(subjects))
    return {s for s, n in counts.items() if n > 1 and s != -1}
    ### END SOLUTION''',
        tests='''from lab_utils.grading.exercises import check_leaked_subjects

check_leaked_subjects(leaked_subjects)
### BEGIN HIDDEN TESTS
check_leaked_subjects(leaked_subjects, {"train": {-1, 1, 2, 3}, "val": {3, 4, 5}, "test": {-1, 6}})
check_leaked_subjects(leaked_subjects, {"a": {1, 2}, "b": {2, 3}, "c": {3, 4}, "d": {4, 1, 9}})
### END HIDDEN TESTS'''),
    Exercise(
        "ex05_six_channel_stem", "05_rgb_thermal_fusion", after="14580c40", points=2,
        task="""### ✎ Exercise · A 6-channel stem that keeps the pretrained scale

Write `six_channel_stem(conv)`: from the pretrained patch embedding `conv`, a
`Conv2d(3, h, p, stride=p)`, build a `Conv2d(6, h, p, stride=p)` for `[rgb ; thermal]` whose
output on `[x ; x]` equals `conv(x)` — what `EarlyFusionViT` does above.

*Hint:* `torch.cat([W, W], dim=1)` alone doubles every patch embedding (W·x + W·x); each half
gets `W / 2`. Keep the bias as it is (and no bias if `conv` has none). Copy weights inside
`torch.no_grad()`.""",
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
        tests='''from lab_utils.grading.exercises import check_six_channel_stem

check_six_channel_stem(six_channel_stem)
### BEGIN HIDDEN TESTS
check_six_channel_stem(six_channel_stem, bias=False, seed=50)
### END HIDDEN TESTS'''),
)


def exercises_for(notebook: str) -> list[Exercise]:
    """The exercises of one notebook (its file stem, e.g. ``01_vit_patching``), in order."""
    return [e for e in EXERCISES if e.notebook == notebook]


def exercise_cells(ex: Exercise) -> list[nbformat.NotebookNode]:
    """The task, solution and test cells of ``ex`` with their tags, ids and nbgrader metadata
    (the test cell is locked and worth ``ex.points``)."""
    stem = ex.grade_id.replace("_", "-")
    task = new_markdown_cell(ex.task, id=f"{stem}-task", metadata={"tags": [EXERCISE_TAG]})
    solution = new_code_cell(ex.solution, id=f"{stem}-solution", metadata={
        "tags": [EXERCISE_TAG],
        "nbgrader": {"grade": False, "grade_id": f"{ex.grade_id}_solution", "locked": False,
                     "schema_version": 3, "solution": True}})
    tests = new_code_cell(ex.tests, id=f"{stem}-tests", metadata={
        "tags": [EXERCISE_TAG],
        "nbgrader": {"grade": True, "grade_id": ex.grade_id, "locked": True, "points": ex.points,
                     "schema_version": 3, "solution": False}})
    return [task, solution, tests]


def insert_exercises(path: Path) -> list[str]:
    """Insert the exercises of notebook ``path`` that it lacks, each after its ``after`` cell;
    returns the ids of the inserted cells. Existing cells are never changed.

    Raises:
        KeyError: if a cell an exercise should follow is not in the notebook.
    """
    nb = nbformat.read(path, as_version=4)
    inserted: list[str] = []
    for ex in exercises_for(path.stem):
        cells = exercise_cells(ex)
        if any(c.get("id") == cells[0].id for c in nb.cells):
            continue
        ids = [c.get("id") for c in nb.cells]
        if ex.after not in ids:
            raise KeyError(f"{path.name}: exercise {ex.grade_id} follows cell {ex.after!r}, which is not in the "
                           "notebook; set Exercise.after in lab_utils/grading/cells.py to the id of the cell that "
                           "introduces the exercise")
        at = ids.index(ex.after) + 1
        nb.cells[at:at] = cells
        inserted += [c.id for c in cells]
    if inserted:
        nbformat.write(nb, path)
    return inserted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        added = insert_exercises(path)
        print(f"{path.name}: {', '.join(added) if added else 'every exercise already there'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
