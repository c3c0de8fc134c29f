"""Model specs: settled once from a name, the config and the profile; build(spec, device) makes the
architecture only (the meta device included); loading weights is a separate step that never trains;
nothing under models/, data/, recipes/ reads the environment."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from lab_utils.config import load_config
from lab_utils.models import build
from lab_utils.models.clip import TextEncoderSpec, create_clip_model, image_encoder_spec, text_encoder_spec
from lab_utils.models.fer import FUSION_MODELS, ViTForFER, create_multimodal_vit_model, fer_spec
from lab_utils.models.hybrid import (CLIPBranchSpec, HybridViTCLIP, clip_branch_spec, hybrid_spec,
                                     load_clip_branch)
from lab_utils.models.pretrained import ViTSpec, load_vit, quick_vit_config, vit_spec
from lab_utils.paths import checkpoints_dir
from lab_utils.recipes.clip import clip_settings, recipe_clip_branch_spec

from test_hybrid import MODEL_YML, NUM_CLASSES, save_lab_clip_encoder, tiny_clip_vision, tiny_vit

PACKAGE = Path(__file__).resolve().parents[1] / "lab_utils"
CLIP_YML = PACKAGE.parent / "configs" / "clip.yml"


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


# --------------------------------------------------------------------------- build: architecture only
@pytest.mark.parametrize("name", list(FUSION_MODELS))
def test_fer_built_on_meta_has_the_real_models_parameters(name):
    real = create_multimodal_vit_model(**FUSION_MODELS[name], profile="quick", verbose=False)
    meta = build(fer_spec(profile="quick", **FUSION_MODELS[name]), "meta")
    assert type(meta) is type(real) and shapes(meta) == shapes(real)
    assert all(p.is_meta for p in meta.parameters())


@pytest.mark.parametrize("fusion", ["concat", "attention", "vit_only", "clip_only"])
def test_hybrid_built_on_meta_has_the_real_models_parameters(fusion):
    save_lab_clip_encoder(embed_dim=32, image_size=32)
    cfg = load_config(MODEL_YML, profile="quick")
    real = HybridViTCLIP.from_config(cfg, NUM_CLASSES, fusion=fusion, profile="quick", verbose=False)
    meta = build(hybrid_spec(cfg, NUM_CLASSES, fusion, profile="quick"), "meta")
    assert shapes(meta) == shapes(real) and all(p.is_meta for p in meta.parameters())


@pytest.mark.parametrize("which", ["main", "compare"])
def test_notebook_02s_image_encoders_built_on_meta_match_create_clip_model(which):
    settings = clip_settings(load_config(CLIP_YML, profile="quick"), which)
    real = create_clip_model(**settings, profile="quick", verbose=False).image_encoder
    spec = image_encoder_spec(settings["image_backbone"], settings["embed_dim"], settings["image_size"],
                              settings["pretrained"], settings["vit_model_name"], "quick")
    meta = build(spec, "meta")
    assert type(meta) is type(real) and shapes(meta) == shapes(real) and meta.image_size == real.image_size


def test_full_profile_models_build_on_meta_without_a_download(monkeypatch):
    """A hub id whose config is not on this machine: its shape from its name, on the meta device."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fer = build(fer_spec("google/vit-base-patch16-224-in21k", "full"), "meta")
    assert fer.hidden_size == 768 and fer.num_layers == 12 and fer.vit.config.image_size == 224
    assert sum(p.numel() for p in fer.vit.parameters()) == 85_798_656          # ViT-B/16, no pooler
    branch = build(clip_branch_spec("ViT-L/14@336px", "full"), "meta")
    assert (branch.kind, branch.image_size, branch.embed_dim) == ("hf", 336, 768)
    text = text_encoder_spec("openai/clip-vit-base-patch32", "full")
    assert isinstance(text, TextEncoderSpec) and (text.kind, text.pooling, text.config_known) == ("clip", "eos", False)
    assert sum(p.numel() for p in build(text, "meta").parameters()) == 63_165_952   # CLIP ViT-B's text tower


def test_build_refuses_what_is_not_a_spec():
    with pytest.raises(TypeError, match=r"build\(\) got a str; it builds ViTSpec, .*vit_spec"):
        build("google/vit-base-patch16-224-in21k", "meta")


# --------------------------------------------------------------------------- loading: a separate step
def test_vit_spec_of_a_local_folder_builds_its_shape_and_loads_its_weights(tmp_path):
    saved = tiny_vit(seed=3)
    saved.save_pretrained(tmp_path / "vit")
    spec = vit_spec(tmp_path / "vit", profile="quick")         # a folder loads in either profile
    assert spec.pretrained and spec.config.hidden_size == saved.config.hidden_size
    meta = build(spec, "meta")
    loaded = load_vit(spec, verbose=False)
    assert {k: v for k, v in shapes(meta).items() if "pooler" not in k} == shapes(saved)
    state = loaded.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.state_dict().items())


def test_clip_branch_spec_of_a_local_folder_loads_its_weights_into_that_shape(tmp_path):
    saved = tiny_clip_vision(seed=4)
    saved.save_pretrained(tmp_path / "clip")
    spec = clip_branch_spec(str(tmp_path / "clip"), "quick")
    assert spec.kind == "hf" and spec.config.projection_dim == 24
    assert shapes(build(spec, "meta")) == shapes(load_clip_branch(spec, verbose=False))
    branch = load_clip_branch(str(tmp_path / "clip"), profile="quick")
    assert all(torch.equal(branch.encoder.state_dict()[k], v) for k, v in saved.state_dict().items())


def test_building_and_loading_never_train_nor_write_checkpoints():
    folder = checkpoints_dir()
    before = sorted(folder.iterdir())
    spec = clip_branch_spec("ViT-B/32", "quick")               # notebook 02's encoder, not saved yet
    assert spec.kind == "lab" and spec.encoder is None and spec.instead_of
    with pytest.raises(FileNotFoundError, match="Run notebook 02"):
        build(spec, "meta")
    with pytest.raises(FileNotFoundError, match="Run notebook 02"):
        load_clip_branch("ViT-B/32", profile="quick")
    planned = recipe_clip_branch_spec("ViT-B/32", "quick")     # the recipe notebook 02 would save there
    branch = build(planned, "meta")
    assert isinstance(planned, CLIPBranchSpec) and branch.kind == "lab" and branch.image_size == 32
    cfg = load_config(MODEL_YML, profile="quick")
    with pytest.raises(FileNotFoundError):
        HybridViTCLIP.from_config(cfg, NUM_CLASSES, profile="quick", verbose=False)
    assert sorted(folder.iterdir()) == before


# --------------------------------------------------------------------------- the profile is an argument
def test_lab_profile_full_in_the_environment_does_not_reach_the_models(monkeypatch):
    monkeypatch.setenv("LAB_PROFILE", "full")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ViTForFER(profile="quick", verbose=False).hidden_size == quick_vit_config().hidden_size
    assert ViTForFER(verbose=False).hidden_size == quick_vit_config().hidden_size   # quick: the default
    assert vit_spec(profile="quick") == ViTSpec("google/vit-base-patch16-224-in21k", quick_vit_config(), False)
    assert clip_branch_spec("ViT-B/32", "quick").kind == "lab"


def _reads_the_environment(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = [f"{path.name}:{n.lineno} get_profile" for n in ast.walk(tree)
             if isinstance(n, ast.Name) and n.id == "get_profile"
             or isinstance(n, ast.alias) and n.name == "get_profile"]
    found += [f"{path.name}:{n.lineno} os.environ" for n in ast.walk(tree)
              if isinstance(n, ast.Attribute) and n.attr == "environ"]
    return found


def test_models_data_and_recipes_never_read_the_environment():
    """Whether the network may be used (HF_HUB_OFFLINE, HF_ENDPOINT) is asked of lab_utils.network."""
    seen = [hit for folder in ("models", "data", "recipes") for path in sorted((PACKAGE / folder).glob("*.py"))
            for hit in _reads_the_environment(path)]
    assert seen == []


def test_building_leaves_the_spec_as_it_was_settled():
    """transformers' constructors write into the config they get (4.x: the attention
    implementation); a built spec still equals the same spec settled again."""
    from lab_utils.models.pretrained import vit_spec
    from lab_utils.models.specs import build

    spec = vit_spec("google/vit-base-patch16-224-in21k", "full")
    build(spec, "meta")
    assert spec == vit_spec("google/vit-base-patch16-224-in21k", "full")
