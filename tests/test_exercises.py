"""Each exercise's checks (lab_utils.exercises) and the cells that hold the exercises and
written questions (lab_tools.grading.cells): the solutions pass their public and hidden tests, the
stub fails with the clear error, each typical mistake gets its hint, the checks leave the
notebook's random stream alone, the tasks say what is graded, every question has a rubric, and
the sync tool makes a notebook match cells.py without touching its other cells."""
import io
import json
import math
import re
import shutil
import time
import tokenize
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab_utils import exercises as X
from lab_tools.grading.cells import (EXERCISES, QUESTIONS, USES_TAG, exercise_cells, insert_exercises, is_managed,
                                     item_cells, main, question_cells, questions_for, sync_notebook, synced_cells)
from lab_tools.grading.course import STUB

from _solutions import solution_cell as _solution

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
def _public(tests: str) -> str:
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", tests, flags=re.S)


def _run(source: str, tests: str) -> dict:
    namespace: dict = {}
    exec(source, namespace)   # noqa: S102 — the lab's own exercise cells
    exec(tests, namespace)    # noqa: S102
    return namespace


def _ids(items):
    return [i.grade_id for i in items]


# --------------------------------------------------------------------------- solutions, stubs, cells
@pytest.mark.parametrize("ex", EXERCISES, ids=_ids(EXERCISES))
def test_each_solution_passes_its_public_and_hidden_tests(ex, capsys):
    _run(_solution(ex), ex.tests)
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("✓") for line in lines)


@pytest.mark.parametrize("ex", EXERCISES, ids=_ids(EXERCISES))
def test_the_stub_fails_with_the_clear_error(ex):
    assert ex.solution.count("### BEGIN SOLUTION") == ex.solution.count("### END SOLUTION") >= 1
    with pytest.raises(NotImplementedError, match="not implemented yet — see the hint above"):
        _run(_solution(ex, STUB), _public(ex.tests))


@pytest.mark.parametrize("ex", EXERCISES, ids=_ids(EXERCISES))
def test_each_test_cell_has_public_and_hidden_checks(ex):
    assert ex.tests.count("### BEGIN HIDDEN TESTS") == ex.tests.count("### END HIDDEN TESTS") == 1
    public = _public(ex.tests)
    assert "from lab_utils.exercises import" in public and re.search(r"^check_\w+\(", public, re.M)


@pytest.mark.parametrize("ex", EXERCISES, ids=_ids(EXERCISES))
def test_each_solution_cell_imports_what_it_uses(ex):
    source = _solution(ex)
    needs = {r"\btorch\.": r"^import torch$", r"(?<![\w.])F\.": r"^import torch\.nn\.functional as F$",
             r"(?<![\w.])nn\.": r"^from torch import nn$|^import torch\.nn as nn$", r"\bmath\.": r"^import math$",
             r"\bCounter\(": r"^from collections import Counter$"}
    for use, imported in needs.items():
        if re.search(use, source):
            assert re.search(imported, source, re.M), f"{ex.grade_id}: uses {use!r} without importing it"
    _run(_solution(ex), "")           # a fresh namespace: NameError if something is missing


def _names(code: str) -> tuple[set[str], str]:
    """The identifiers of ``code`` and the code without comments and strings (docstrings included)."""
    names, kept = set(), []
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.NAME:
            names.add(tok.string)
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            kept.append(tok.string)
    return names, " ".join(kept).replace(" . ", ".")


@pytest.mark.parametrize("ex", EXERCISES, ids=_ids(EXERCISES))
def test_each_task_states_what_is_graded_and_what_is_not_allowed(ex):
    assert ex.reference, f"{ex.grade_id}: fill Exercise.reference with the lab names it re-implements"
    task = " ".join(ex.task.split())
    assert "Graded" in task and "Not allowed" in task and "*Hint:*" in task
    assert not re.search(r"exactly what `?[\w.]+`? (returns|does|gives)", task), \
        f"{ex.grade_id}: state the specification, not 'exactly what <lab function> returns'"
    for name in ex.reference:
        if "." not in name:
            assert name in task, f"{ex.grade_id}: the task should tell students that {name} is not allowed"
    names, code = _names(_solution(ex))
    for name in ex.reference:
        assert (name not in code) if "." in name else (name not in names), \
            f"{ex.grade_id}: the model solution uses {name}, which the grader scores 0"


def test_standardize_says_which_std_is_graded():
    task = " ".join(next(e for e in EXERCISES if e.grade_id == "ex03_standardize").task.replace("*", "").split())
    assert "N − 1" in task and "sample standard deviation" in task


def test_exercise_cells_carry_ids_tags_and_nbgrader_marks():
    for ex in EXERCISES:
        cells = exercise_cells(ex)
        stem = ex.grade_id.replace("_", "-")
        assert [c.id for c in cells] == [f"{stem}-{p}" for p in ("task", "solution", "tests", "uses")[:len(cells)]]
        assert cells[2].metadata["nbgrader"] == {"grade": True, "grade_id": ex.grade_id, "locked": True,
                                                 "points": ex.points, "schema_version": 3, "solution": False}
        assert cells[1].metadata["nbgrader"]["solution"] and not cells[1].metadata["nbgrader"]["grade"]
        if ex.uses:
            assert cells[3].metadata == {"tags": [USES_TAG]} and "nbgrader" not in cells[3].metadata
    total = sum(e.points for e in EXERCISES)
    assert 18 <= total <= 22
    for stem in {e.notebook for e in EXERCISES}:
        assert 2 <= len([e for e in EXERCISES if e.notebook == stem]) <= 3


# --------------------------------------------------------------------------- typical mistakes
def _one_sided(img, txt, scale):
    logits = scale * img @ txt.T
    return F.cross_entropy(logits, torch.arange(len(logits)))


def _copied_w(conv):
    new = nn.Conv2d(6, conv.out_channels, conv.kernel_size, conv.stride, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(torch.cat([conv.weight, conv.weight], dim=1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _thermal_zero(conv):
    new = _copied_w(conv)
    with torch.no_grad():
        new.weight[:, 3:] = 0
    return new


def _no_permute(x, p):
    B, C, H, W = x.shape
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def _same_rate(model, lr, scale=0.1):
    named = list(model.named_parameters())
    return [{"name": "backbone", "params": [p for n, p in named if n.startswith("vit.")], "lr": lr},
            {"name": "head", "params": [p for n, p in named if not n.startswith("vit.")], "lr": lr}]


def _frozen_included(model, lr, scale=0.1):
    named = list(model.named_parameters())
    return [{"name": "backbone", "params": [p for n, p in named if n.startswith("vit.")], "lr": lr * scale},
            {"name": "head", "params": [p for n, p in named if not n.startswith("vit.")], "lr": lr}]


def _first_token(vit, clip, proj, attention):
    tokens = torch.stack([vit, proj(clip)], dim=1)
    return attention(tokens, tokens, tokens)[0][:, 0]


def _fusion(weights_of):
    def fuse(vit, clip, proj, attention):
        tokens = torch.stack([vit, proj(clip)], dim=1)
        mixed, w = attention(tokens, tokens, tokens)
        return mixed.mean(dim=1), weights_of(w)
    return fuse


def _fusion_first_token(vit, clip, proj, attention):
    tokens = torch.stack([vit, proj(clip)], dim=1)
    mixed, w = attention(tokens, tokens, tokens)
    return mixed[:, 0], w.mean(dim=1)


def _recall_columns(sim, k):
    return (sim.T.topk(k, dim=1).indices == torch.arange(len(sim))[:, None]).any(dim=1).float().mean().item()


def _recall_smallest(sim, k):
    return (sim.topk(k, dim=1, largest=False).indices == torch.arange(len(sim))[:, None]).any(dim=1).float().mean()


def _standardize_leaky(train, embeds):
    return (embeds - embeds.mean(0)) / (embeds.std(0) + 1e-6)


def _standardize_rows(train, embeds):
    return (embeds - embeds.mean(1, keepdim=True)) / (embeds.std(1, keepdim=True) + 1e-6)


def _standardize_no_eps(train, embeds):
    return (embeds - train.mean(0)) / train.std(0)


def _standardize_population(train, embeds):
    return (embeds - train.mean(0)) / (train.std(0, correction=0) + 1e-6)


def _train_vs_test(subjects_by_split):
    return subjects_by_split["train"] & subjects_by_split["test"]


def _with_unknown(subjects_by_split):
    seen = [s for subjects in subjects_by_split.values() for s in subjects]
    return {s for s in seen if seen.count(s) > 1}


def _attention(scale_by="d", softmax_dim=-1, split=True, project=True, weights="mean"):
    """A hand-written multi-head self-attention with one typical mistake switched on."""
    def forward(x, attention):
        B, N, D = x.shape
        h = attention.num_heads if split else 1
        q, k, v = (t.reshape(B, N, h, D // h).transpose(1, 2)
                   for t in (x @ attention.in_proj_weight.T + attention.in_proj_bias).chunk(3, dim=-1))
        scale = {"d": math.sqrt(D // attention.num_heads), "D": math.sqrt(D), None: 1.0}[scale_by]
        probs = (q @ k.transpose(-2, -1) / scale).softmax(dim=softmax_dim)
        mixed = (probs @ v).transpose(1, 2).reshape(B, N, D)
        return (attention.out_proj(mixed) if project else mixed), (probs.mean(1) if weights == "mean" else probs)
    return forward


def _module_forward(x, attention):
    return attention(x, x, x)


def _fused_sdpa(x, attention):
    B, N, D = x.shape
    q, k, v = (x @ attention.in_proj_weight.T + attention.in_proj_bias).chunk(3, dim=-1)
    return F.scaled_dot_product_attention(q, k, v), None


def _infonce(direction="both", reduce="mean", scale_on=True, log=lambda z, dim: z - z.logsumexp(dim, keepdim=True)):
    def loss(img, txt, scale):
        logits = (scale if scale_on else 1.0) * img @ txt.T
        rows = -log(logits, 1).diagonal().mean()
        cols = -log(logits, 0).diagonal().mean()
        out = {"rows": rows, "both": (rows + cols) / 2, "sum": rows + cols}[direction]
        return out if reduce == "mean" else out * len(img)
    return loss


def _detached(img, txt, scale):
    return _infonce()(img, txt, scale).detach()


def _fd(kind="central", restore=True, all_at_once=False, dtype=None, fixed_eps=None):
    """A finite-difference gradient with one typical mistake switched on."""
    def grad(f, x, eps=1e-3):
        eps = fixed_eps or eps
        out = torch.zeros_like(x, dtype=dtype or x.dtype)
        flat = x.view(-1)
        for i in range(x.numel()):
            original = flat[i].item()
            if all_at_once:
                plus, minus = float(f(x + eps)), float(f(x - eps))
            else:
                flat[i] = original + eps
                plus = float(f(x))
                flat[i] = original - eps
                minus = float(f(x))
                flat[i] = original if restore else original - eps
            here = float(f(x))
            out.view(-1)[i] = {"central": (plus - minus) / (2 * eps), "forward": (plus - here) / eps,
                               "no half": (plus - minus) / eps}[kind]
        return out
    return grad


def _fd_autograd(f, x, eps=1e-3):
    leaf = x.clone().requires_grad_()
    return torch.autograd.grad(f(leaf), leaf)[0]


def _collapse(rule):
    return lambda w, level=0.9: rule(torch.as_tensor(w), level)


def _blocks(rule):
    return lambda epoch, num_layers, every: rule(epoch, num_layers, every)


def _unfreeze(order="top", embeddings=False, norm=True, reset=True, head=True):
    """A hand-written unfreeze_top_layers with one typical mistake switched on."""
    def unfreeze(model, n):
        from lab_utils.models.fer import encoder_layers

        if reset:
            model.vit.requires_grad_(False)
        blocks = list(encoder_layers(model.vit))
        chosen = blocks[len(blocks) - n:] if order == "top" else blocks[:n]
        for block in chosen if n else []:
            block.requires_grad_(True)
        if norm and n:
            model.vit.layernorm.requires_grad_(True)
        if embeddings:
            model.vit.embeddings.requires_grad_(True)
        model.classifier.requires_grad_(head)
    return unfreeze


_AT_LEVEL = {"weights": [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.125, 0.875]], "level": 0.75}

MISTAKES = [
    # 01
    ("no permute", X.check_patchify, _no_permute, {}, "permute(0, 2, 4, 1, 3, 5)"),
    ("no ValueError", X.check_patchify_rejects, _no_permute, {}, "raise ValueError"),
    ("attention: no 1/√d", X.check_self_attention, _attention(scale_by=None), {}, "not divided by √d"),
    ("attention: 1/√D", X.check_self_attention, _attention(scale_by="D"), {}, "divided by √D"),
    ("attention: softmax over queries", X.check_self_attention, _attention(softmax_dim=-2), {}, "over the queries"),
    ("attention: heads not split", X.check_self_attention, _attention(split=False, scale_by="D"), {},
     "heads were not split"),
    ("attention: no out_proj", X.check_self_attention, _attention(project=False), {}, "attention.out_proj"),
    ("attention: weights per head", X.check_self_attention, _attention(weights="all"), {}, "mean over the heads"),
    ("attention: module forward", X.check_self_attention, _module_forward, {}, "the module's own forward"),
    ("attention: fused kernel", X.check_self_attention, _fused_sdpa, {}, "scaled_dot_product_attention"),
    # 02
    ("InfoNCE: one direction", X.check_infonce, _infonce(direction="rows"), {}, "image→text half only"),
    ("InfoNCE: summed", X.check_infonce, _infonce(direction="sum"), {}, "divide by 2"),
    ("InfoNCE: no scale", X.check_infonce, _infonce(scale_on=False), {}, "not multiplied by scale"),
    ("InfoNCE: summed over the batch", X.check_infonce, _infonce(reduce="sum"), {}, "mean over the B pairs"),
    ("InfoNCE: not differentiable", X.check_infonce, _detached, {}, "no .item()"),
    ("InfoNCE: log of softmax", X.check_infonce_stable, _infonce(log=lambda z, dim: z.softmax(dim).log()), {},
     "z − logsumexp(z)"),
    ("InfoNCE: exp without the max", X.check_infonce_stable,
     _infonce(log=lambda z, dim: z - z.exp().sum(dim, keepdim=True).log()), {}, "overflows float32"),
    ("InfoNCE: one direction (hidden)", X.check_contrastive_symmetric, _one_sided, {},
     "symmetric loss gives the same number"),
    ("FD: one-sided", X.check_finite_difference, _fd(kind="forward"), {}, "one-sided (forward) difference"),
    ("FD: divided by eps", X.check_finite_difference, _fd(kind="no half"), {}, "divide by 2·eps"),
    ("FD: x not restored", X.check_finite_difference, _fd(restore=False), {}, "left x changed"),
    ("FD: all entries at once", X.check_finite_difference, _fd(all_at_once=True), {}, "Move ONE entry at a time"),
    ("FD: float32 result", X.check_finite_difference, _fd(dtype=torch.float32), {}, "keep x's dtype"),
    ("FD: eps ignored (hidden)", X.check_finite_difference_exact, _fd(fixed_eps=1e-3), {}, "use the eps argument"),
    ("FD: one-sided (hidden)", X.check_finite_difference_exact, _fd(kind="forward"), {}, "one-sided"),
    ("FD: autograd (hidden)", X.check_finite_difference_exact, _fd_autograd, {}, "exact derivative"),
    ("recall by columns", X.check_recall_at_k, _recall_columns, {}, "you ranked each column"),
    ("recall of the k smallest", X.check_recall_at_k, _recall_smallest, {}, "the k smallest similarities"),
    # 03
    ("test statistics", X.check_standardize, _standardize_leaky, {}, "from the TRAINING embeddings only"),
    ("rows standardised", X.check_standardize, _standardize_rows, {}, "each row (image) was normalised"),
    ("population std", X.check_standardize, _standardize_population, {}, "N − 1"),
    ("no epsilon (hidden)", X.check_standardize, _standardize_no_eps, {"constant_feature": True},
     "divide by (std + 1e-6)"),
    ("fusion: ViT token only", X.check_attention_fusion, _fusion_first_token, {}, "only the first token's output"),
    ("fusion: 2×2 weights", X.check_attention_fusion, _fusion(lambda w: w), {}, "the whole (B, 2, 2) matrix"),
    ("fusion: weights over keys", X.check_attention_fusion, _fusion(lambda w: w.mean(dim=2)), {},
     "averaged over the keys"),
    ("fusion: ViT query row", X.check_attention_fusion, _fusion(lambda w: w[:, 0]), {}, "only the ViT token's row"),
    ("collapse: > instead of ≥ (hidden)", X.check_collapse_share,
     _collapse(lambda w, lv: (w.max(1).values > lv).float().mean()), _AT_LEVEL, "(≥, not >)"),
    ("collapse: first input only", X.check_collapse_share,
     _collapse(lambda w, lv: (w[:, 0] >= lv).float().mean()), {}, "first input's weight only"),
    ("collapse: a count", X.check_collapse_share,
     _collapse(lambda w, lv: (w.max(1).values >= lv).sum()), {}, "counted the examples"),
    ("collapse: share of entries", X.check_collapse_share,
     _collapse(lambda w, lv: (w >= lv).float().mean()), {}, "all N·M weights"),
    # 04
    ("one learning rate", X.check_param_groups, _same_rate, {}, "both groups have the same rate"),
    ("frozen weights", X.check_param_groups, _frozen_included, {"freeze_first": True}, "holds frozen weights"),
    ("schedule: a block in epoch 0", X.check_blocks_to_open,
     _blocks(lambda e, n, k: min(n, e // k + 1)), {}, "already opens in epoch 0"),
    ("schedule: no cap", X.check_blocks_to_open, _blocks(lambda e, n, k: e // k), {}, "stops at num_layers"),
    ("schedule: rounded up", X.check_blocks_to_open, _blocks(lambda e, n, k: min(n, math.ceil(e / k))), {},
     "completed periods"),
    ("unfreeze from the bottom", X.check_unfreeze_top_layers, _unfreeze(order="bottom"), {}, "BOTTOM n blocks"),
    ("unfreeze: embeddings open", X.check_unfreeze_top_layers, _unfreeze(embeddings=True), {},
     "embeddings (patch projection"),
    ("unfreeze: final norm forgotten", X.check_unfreeze_top_layers, _unfreeze(norm=False), {},
     "final LayerNorm (model.vit.layernorm)"),
    ("unfreeze: nothing frozen first", X.check_unfreeze_top_layers, _unfreeze(reset=False), {},
     "freeze the backbone first"),
    ("unfreeze: head frozen", X.check_unfreeze_top_layers, _unfreeze(head=False), {}, "head (model.classifier)"),
    # 05
    ("W in both halves", X.check_six_channel_stem, _copied_w, {}, "W was copied into both halves"),
    ("thermal half zero", X.check_six_channel_stem, _thermal_zero, {}, "the thermal half is zero"),
    ("train vs test only", X.check_leaked_subjects, _train_vs_test, {}, "compared train with test only"),
    ("unknown subject (hidden)", X.check_leaked_subjects, _with_unknown,
     {"subjects_by_split": {"train": {-1, 1}, "test": {-1, 2}}}, "-1 means 'subject unknown'"),
]


@pytest.mark.parametrize("check, wrong, kwargs, hint", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_a_typical_mistake_fails_with_a_hint(check, wrong, kwargs, hint):
    with pytest.raises(AssertionError) as err:
        check(wrong, **kwargs)
    message = str(err.value)
    assert message.startswith("✗") and hint in message, message


def test_every_check_a_test_cell_calls_is_in_the_mistake_table():
    called = {name for ex in EXERCISES for name in re.findall(r"^(check_\w+)\(", ex.tests, re.M)}
    tested = {m[1].__name__ for m in MISTAKES}
    assert called <= tested, f"checks without a typical mistake in MISTAKES: {sorted(called - tested)}"


def test_the_attention_check_puts_the_functional_kernels_back():
    kernels = (F.scaled_dot_product_attention, F.multi_head_attention_forward)
    with pytest.raises(AssertionError):
        X.check_self_attention(_fused_sdpa)
    assert (F.scaled_dot_product_attention, F.multi_head_attention_forward) == kernels


# --------------------------------------------------------------------------- notebooks: random stream, speed
def test_checks_leave_the_notebooks_random_stream_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    for ex in EXERCISES:
        _run(_solution(ex), ex.tests)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("ex", EXERCISES, ids=_ids(EXERCISES))
def test_each_exercise_runs_in_under_a_second(ex, capsys):
    _run(_solution(ex), ex.tests)                  # first run: imports (transformers, …) already done by the notebook
    start = time.perf_counter()
    _run(_solution(ex), ex.tests)
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------- uses cells, in a stand-in notebook
def _uses(grade_id: str):
    return next(e for e in EXERCISES if e.grade_id == grade_id)


def _clip_lesson() -> dict:
    from lab_utils.metrics import recall_at_k

    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(30, 8, generator=g), dim=-1)
    txt = F.normalize(img + 0.7 * torch.randn(30, 8, generator=g), dim=-1)
    return {"torch": torch, "model": None, "eval_captions": txt, "test": SimpleNamespace(images=img, cache=None),
            "recipe": SimpleNamespace(embed_images=lambda model, images: images),
            "clip_data": SimpleNamespace(encode_captions=lambda model, captions, cache: captions),
            "recall_after": recall_at_k(img, txt, torch.arange(30), ks=(1, 5, 10))}


def _fusion_lesson() -> dict:
    from lab_utils.metrics import pinned_share

    weights = X._collapse_weights(40, 2, seed=3)
    return {"torch": torch, "weights": weights, "pinned": pinned_share(weights, 0.9)}


def _fer_lesson() -> dict:
    import pandas as pd
    from lab_utils.models import count_parameters
    from lab_utils.models.fer import ViTForFER

    with torch.random.fork_rng(devices=[]):
        model = ViTForFER(num_classes=7, freeze_backbone=True, profile="quick", verbose=False)
    return {"torch": torch, "pd": pd, "count_parameters": count_parameters, "model": model,
            "cfg": SimpleNamespace(train=SimpleNamespace(epochs=8))}


LESSONS = {"ex02_recall_at_k": _clip_lesson, "ex03_attention_fusion": _fusion_lesson,
           "ex04_gradual_unfreezing": _fer_lesson}


def test_every_uses_cell_has_a_lesson_stand_in():
    assert {e.grade_id for e in EXERCISES if e.uses} == set(LESSONS)


@pytest.mark.parametrize("grade_id", sorted(LESSONS))
@pytest.mark.parametrize("written", [True, False], ids=["solution", "stub"])
def test_a_uses_cell_runs_with_the_solution_and_with_the_stub(grade_id, written, capsys):
    ex = _uses(grade_id)
    namespace = LESSONS[grade_id]()
    flags = {n: p.requires_grad for n, p in namespace["model"].named_parameters()} if namespace.get("model") else {}
    exec(_solution(ex, None if written else STUB), namespace)   # noqa: S102
    capsys.readouterr()
    torch.manual_seed(11)
    expected = torch.rand(2)
    torch.manual_seed(11)
    outputs = []
    for _ in range(2):                                          # the same lines every time: nbval compares them
        exec(ex.uses, namespace)                                # noqa: S102
        outputs.append(capsys.readouterr().out)
    assert torch.equal(torch.rand(2), expected), "a uses cell must not draw from the notebook's random stream"
    assert outputs[0] == outputs[1] and outputs[0].strip()
    if written:
        assert "✗" not in outputs[0] and "raised" not in outputs[0]
    else:
        assert "NotImplementedError" in outputs[0] and "✓" not in outputs[0]
    if flags:                                                   # the notebook's model is left as it was
        assert flags == {n: p.requires_grad for n, p in namespace["model"].named_parameters()}


# --------------------------------------------------------------------------- written questions
@pytest.mark.parametrize("q", QUESTIONS, ids=_ids(QUESTIONS))
def test_every_question_has_a_prompt_and_a_rubric_with_its_points(q):
    assert 1 <= q.points <= 2 and q.grade_id.startswith(f"q{q.notebook[:2]}_")
    assert q.prompt.startswith("### ✎ Question") and f"({q.points:g} point" in q.prompt
    assert "**Model answer.**" in q.answer and f"**Rubric ({q.points:g} point" in q.answer
    rubric = q.answer.split("**Rubric", 1)[1]
    assert f"{q.points:g} point" in rubric and "0 points" in rubric
    if q.points > 1:
        assert "1 point" in rubric


def test_question_cells_are_manually_graded_markdown():
    for q in QUESTIONS:
        prompt, answer = question_cells(q)
        stem = q.grade_id.replace("_", "-")
        assert (prompt.id, answer.id) == (f"{stem}-prompt", f"{stem}-answer")
        assert prompt.cell_type == answer.cell_type == "markdown"
        assert prompt.metadata == {"tags": ["question"]}
        assert answer.metadata["tags"] == ["question"]
        assert answer.metadata["nbgrader"] == {"grade": True, "solution": True, "locked": False, "points": q.points,
                                               "grade_id": q.grade_id, "schema_version": 3, "task": False}
        assert answer.source == f"### BEGIN SOLUTION\n{q.answer}\n### END SOLUTION"


def test_one_or_two_questions_per_notebook_and_unique_grade_ids():
    for path in NOTEBOOKS:
        assert 1 <= len(questions_for(path.stem)) <= 2
    grade_ids = [i.grade_id for i in (*EXERCISES, *QUESTIONS)]
    assert len(grade_ids) == len(set(grade_ids))


# --------------------------------------------------------------------------- where the cells go, and the sync tool
@pytest.mark.parametrize("item", [*EXERCISES, *QUESTIONS], ids=_ids([*EXERCISES, *QUESTIONS]))
def test_every_after_is_a_lesson_cell_of_its_notebook(item):
    nb = nbformat.read(ROOT / "notebooks" / f"{item.notebook}.ipynb", as_version=4)
    cell = next((c for c in nb.cells if c.get("id") == item.after), None)
    assert cell is not None, f"{item.grade_id}: no cell {item.after!r} in {item.notebook}"
    assert not is_managed(cell), f"{item.grade_id} follows {item.after!r}, an exercise/question cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_exercise_sits_in_its_notebook_as_written_in_cells_py(path):
    """The notebooks hold exactly the cells of cells.py, in place (after a change to cells.py:
    python -m lab_tools.grading.cells --sync notebooks/*.ipynb)."""
    nb = nbformat.read(path, as_version=4)
    want = synced_cells(nb, path.stem)
    assert [c.get("id") for c in nb.cells] == [c.get("id") for c in want]
    for got, cell in zip(nb.cells, want):
        if is_managed(cell):
            assert (got.cell_type, got.source) == (cell.cell_type, cell.source), got.id
            assert got.metadata.get("tags") == cell.metadata.get("tags"), got.id
            assert got.metadata.get("nbgrader") == cell.metadata.get("nbgrader"), got.id


def _lesson_cells(nb) -> list[str]:
    return [json.dumps(c, sort_keys=True) for c in nb.cells if not is_managed(c)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_sync_on_a_copy_is_idempotent_and_leaves_the_lesson_cells_alone(path, tmp_path):
    copy_ = tmp_path / path.name
    shutil.copy(path, copy_)
    before = nbformat.read(copy_, as_version=4)
    sync_notebook(copy_)
    synced = nbformat.read(copy_, as_version=4)
    assert _lesson_cells(synced) == _lesson_cells(before)
    nbformat.validate(synced)
    written = copy_.read_bytes()
    assert sync_notebook(copy_) == [] and copy_.read_bytes() == written
    assert insert_exercises(copy_) == [] and copy_.read_bytes() == written
    assert main(["--check", str(copy_)]) == 0
    want = [c.id for item in (*EXERCISES, *QUESTIONS) if item.notebook == path.stem for c in item_cells(item)]
    assert sorted(c.id for c in synced.cells if is_managed(c)) == sorted(want)
    ids = [c.get("id") for c in synced.cells]
    for item in (*EXERCISES, *QUESTIONS):
        if item.notebook == path.stem:
            first = ids.index(item_cells(item)[0].id)
            above = ids[:first]
            lesson_above = [i for i in above if not is_managed(next(c for c in synced.cells if c.get("id") == i))]
            assert lesson_above[-1] == item.after


def test_sync_replaces_changed_cells_removes_stale_ones_and_keeps_unchanged_outputs(tmp_path):
    path = tmp_path / "01_vit_patching.ipynb"
    shutil.copy(ROOT / "notebooks" / path.name, path)
    sync_notebook(path)
    nb = nbformat.read(path, as_version=4)
    by_id = {c.id: c for c in nb.cells}
    by_id["ex01-self-attention-solution"].source = "# edited by hand"
    by_id["ex01-self-attention-solution"].outputs = [nbformat.v4.new_output("stream", text="old\n")]
    by_id["ex01-patchify-tests"].outputs = [nbformat.v4.new_output("stream", text="✓ kept\n")]
    stale = nbformat.v4.new_markdown_cell("an exercise cells.py no longer has", id="ex01-gone-task",
                                          metadata={"tags": ["exercise"]})
    nb.cells.insert(5, stale)
    nbformat.write(nb, path)
    changes = sync_notebook(path)
    assert "replaced ex01-self-attention-solution" in changes and "removed ex01-gone-task" in changes
    by_id = {c.id: c for c in nbformat.read(path, as_version=4).cells}
    assert "ex01-gone-task" not in by_id
    solution = by_id["ex01-self-attention-solution"]
    assert solution.source == exercise_cells(_uses("ex01_self_attention"))[1].source and solution.outputs == []
    assert by_id["ex01-patchify-tests"].outputs[0]["text"] == "✓ kept\n"


def test_plain_insertion_puts_every_missing_item_where_sync_would(tmp_path):
    for path in NOTEBOOKS:
        copy_ = tmp_path / path.name
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if not is_managed(c)]
        nbformat.write(nb, copy_)
        inserted = insert_exercises(copy_)
        assert inserted and insert_exercises(copy_) == []
        assert main(["--check", str(copy_)]) == 0, path.name
        assert sync_notebook(copy_) == []


def test_check_mode_flags_a_notebook_out_of_sync(tmp_path, capsys):
    path = tmp_path / "05_rgb_thermal_fusion.ipynb"
    nb = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    nb.cells = [c for c in nb.cells if not is_managed(c)]
    nbformat.write(nb, path)
    assert main(["--check", str(path)]) == 1
    assert main(["--sync", str(path)]) == 0 and main(["--check", str(path)]) == 0
    assert "differs from cells.py" in capsys.readouterr().out


def test_sync_refuses_a_notebook_without_the_cell_an_item_follows(tmp_path):
    path = tmp_path / "01_vit_patching.ipynb"
    nb = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != "000580ef"]
    nbformat.write(nb, path)
    written = path.read_bytes()
    with pytest.raises(KeyError, match="ex01_self_attention follows cell '000580ef'"):
        sync_notebook(path)
    assert path.read_bytes() == written


def test_plain_insertion_adds_a_missing_uses_cell_right_after_its_exercise(tmp_path):
    path = tmp_path / "02_clip_contrastive.ipynb"
    shutil.copy(ROOT / "notebooks" / path.name, path)
    sync_notebook(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != "ex02-recall-at-k-uses"]
    nbformat.write(nb, path)
    assert insert_exercises(path) == ["ex02-recall-at-k-uses"]
    assert main(["--check", str(path)]) == 0
