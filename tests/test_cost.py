"""lab_utils.cost: FLOPs counted on the meta device against hand formulas, the per-notebook
plans, the CLI's JSON, and the full profile's T4 budget (issue 9: ≤ 2.0e16 FLOPs each)."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lab_utils import cost as C

B, IN, OUT = 8, 32, 16
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _repo_configs(monkeypatch):
    """The estimates read this repository's configs/ (and write nothing)."""
    monkeypatch.setenv("LAB_ROOT", str(REPO))


# --------------------------------------------------------------------------- the counter
def test_linear_forward_is_2_b_in_out_and_backward_doubles_or_triples_it():
    lin = nn.Linear(IN, OUT)
    x = torch.randn(B, IN)
    assert C.count_flops(lambda: lin(x)) == 2 * B * IN * OUT
    x_grad = x.clone().requires_grad_(True)               # gradient for the weight AND the input
    assert C.count_flops(lambda: lin(x_grad).sum().backward()) == 3 * 2 * B * IN * OUT


def test_net_counts_per_item_and_backward_only_where_weights_learn():
    net = C.Net("mlp", lambda: nn.Sequential(nn.Linear(IN, OUT), nn.ReLU(), nn.Linear(OUT, 4)),
                lambda b: (torch.empty(b, IN),))
    first, second = 2 * IN * OUT, 2 * OUT * 4
    assert net.flops("forward") == first + second
    # input needs no gradient: layer 1 computes its weight gradient only (×2), layer 2 also
    # the gradient of its input (×3)
    assert net.flops("train") == 2 * first + 3 * second
    with pytest.raises(ValueError, match="forward.*train"):
        net.flops("backward")


def analytic_vit_forward(image_size: int, patch=16, hidden=768, layers=12, mlp=3072) -> float:
    """2 · (matmul weights) · tokens for the blocks, + QKᵀ and AV, + the patch embedding."""
    n = (image_size // patch) ** 2
    tokens = n + 1
    blocks = layers * (2 * (4 * hidden * hidden + 2 * hidden * mlp) * tokens + 2 * 2 * tokens ** 2 * hidden)
    return blocks + 2 * n * (3 * patch * patch) * hidden


@pytest.mark.parametrize("size", [224, 112])
def test_vit_b16_forward_matches_the_analytic_formula(size):
    net = C.fer_net("full", size)                         # ViTForFER on ViTConfig() = ViT-B/16, meta device
    assert net.flops("forward") == pytest.approx(analytic_vit_forward(size), rel=0.01)
    assert 2.9 < net.flops("train") / net.flops("forward") <= 3.0          # backward ≈ 2 × forward
    frozen = C.fer_net("full", size, trainable="head")
    assert frozen.flops("train") == pytest.approx(frozen.flops("forward"), rel=0.001)   # head only: no backbone backward
    assert C.fer_net("full", size, trainable=4).flops("train") < net.flops("train")


def test_112_px_costs_about_a_quarter_of_224_px():
    ratio = C.fer_net("full", 224).flops("train") / C.fer_net("full", 112).flops("train")
    assert 3.8 < ratio < 4.3                              # 197 vs 50 tokens


# --------------------------------------------------------------------------- estimates
@pytest.fixture(scope="module")
def full():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_ROOT", str(REPO))
        return C.estimate_all("full")


def test_every_full_profile_notebook_fits_the_t4_budget(full):
    assert set(full) == set(C.NOTEBOOKS)
    for nb, e in full.items():
        assert 0 < e["flops"] <= 2.0e16, f"{nb}: {e['flops']:.2e} FLOPs"
        assert e["minutes"]["T4"] <= C.BUDGET_MINUTES


def test_minutes_follow_the_gpu_table_and_one_mfu():
    one_t4_minute = C.GPUS["T4"]["peak_flops"] * C.MFU * 60
    m = C.minutes(one_t4_minute)
    assert m["T4"] == pytest.approx(1.0)
    assert m["A100"] == pytest.approx(65 / 312) and m["H100"] == pytest.approx(65 / 989)


def test_full_profile_uses_the_real_data_sizes(full):
    assert "28,709 train / 3,589 val / 3,589 test" in full["04_vit_fer_finetuning"]["data"]
    assert "7,091 train / 1,000 held-out" in full["02_clip_contrastive"]["data"]      # Flickr8k as loaded
    assert "3,500 train / 750 val / 750 test" in full["05_rgb_thermal_fusion"]["data"]


def test_frozen_backbone_is_counted_once_in_notebook_04(full):
    passes = full["04_vit_fer_finetuning"]["passes"]
    backbone_once = [p for p in passes if p["what"].startswith("frozen backbone")]
    assert len(backbone_once) == 1 and backbone_once[0]["items"] == 2 * 28_709 + 3_589
    head_epochs = [p for p in passes if "cached features" in p["what"]]
    assert head_epochs and all(p["flops"] < 1e-4 * backbone_once[0]["flops"] * p["items"] for p in head_epochs)


def test_seeds_and_epochs_scale_notebook_05():
    from lab_utils.config import load_config
    from lab_utils.paths import configs_dir

    cfg = load_config(configs_dir() / "fusion.yml", profile="full")
    one = C.estimate("05_rgb_thermal_fusion", cfg, "full")["flops"]
    cfg["seeds"] = 3
    assert C.estimate("05_rgb_thermal_fusion", cfg, "full")["flops"] == pytest.approx(3 * one, rel=0.01)


def test_sizes_given_by_a_notebook_replace_the_defaults():
    e = C.estimate("04_vit_fer_finetuning", profile="quick", sizes={"train": 100, "val": 20, "test": 20})
    assert "100 train / 20 val / 20 test" in e["data"]
    assert e["passes"][0]["items"] == 2 * 100 + 20


# --------------------------------------------------------------------------- CLI and errors
def test_cli_json_has_flops_and_minutes_per_gpu(capsys, full):
    assert C.main(["--profile", "full", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == list(C.NOTEBOOKS)
    for nb, e in out.items():
        assert isinstance(e["flops"], float) and e["flops"] == pytest.approx(full[nb]["flops"])
        assert set(e["minutes"]) == {"T4", "A100", "H100"} and isinstance(e["data"], str)


def test_cli_table_is_readable(capsys):
    C.main(["--profile", "quick", "--notebook", "04_vit_fer_finetuning"])
    out = capsys.readouterr().out
    assert "04_vit_fer_finetuning" in out and "T4 min" in out and "25% MFU" in out


def test_unknown_notebook_or_profile_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="unknown notebook '06_gan'.*04_vit_fer_finetuning"):
        C.estimate("06_gan", profile="full")
    with pytest.raises(ValueError, match="unknown profile 'medium'.*quick, full"):
        C.estimate("04_vit_fer_finetuning", profile="medium")
    with pytest.raises(SystemExit):
        C.main(["--profile", "medium"])
    assert "unknown profile 'medium'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the notebooks' line
def test_print_estimate_on_cpu_shows_every_gpu(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    C.print_estimate("04_vit_fer_finetuning", profile="quick")
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "T4" in line and "A100" in line and "H100" in line and "quick profile" in line


@pytest.mark.parametrize("name, shown", [("Tesla T4", "on this T4"), ("NVIDIA A100-SXM4-40GB", "on this A100"),
                                         ("NVIDIA H200", "not in the table")])
def test_print_estimate_names_this_gpu(capsys, monkeypatch, name, shown):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
    C.print_estimate("01_vit_patching", None, profile="full")
    assert shown in capsys.readouterr().out
