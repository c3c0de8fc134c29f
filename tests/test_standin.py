"""Notebook 04's stand-in backbone (lab_utils.recipes.fer.standin_backbone): pretrained on how
open the eyes are — not on the seven expressions — saved with save_pretrained and a
standin.json that names the task, and trained again when a cached folder was pretrained
otherwise. Tiny sizes: 28 faces (2 people), one epoch."""
import json

import numpy as np
import pytest
import torch
from transformers import ViTModel

from lab_utils.data import SynthFER
from lab_utils.data.synthetic import RGB_ACTION_KEYS
from lab_utils.models.fer import ViTForFER
from lab_utils.models.pretrained import quick_vit_config
from lab_utils.recipes.fer import (STANDIN_CLASSES, STANDIN_INFO, STANDIN_TASK, fer_step, standin_backbone,
                                   standin_info, standin_labels)

FACES = 28


def tiny_cfg():
    return {"model": {"model_name": "google/vit-base-patch16-224-in21k", "num_classes": 7, "pooling": "mean"},
            "data": {"image_size": 32}, "train": {"pretrain_epochs": 1, "learning_rate": 2e-3}, "seed": 0}


def test_standin_labels_are_eye_openness_not_expressions():
    faces = SynthFER(FACES, 32, seed=7)
    attrs = faces.attributes()
    labels = standin_labels(attrs)
    eye_open = attrs["rgb_params"][:, RGB_ACTION_KEYS.index("eye_open")]
    assert STANDIN_TASK == "eye_openness" and STANDIN_CLASSES == ("narrow", "relaxed", "wide")
    assert labels.dtype == torch.long and labels.shape == (FACES,)
    assert torch.equal(labels, torch.as_tensor((eye_open >= 0.8).astype(int) + (eye_open >= 1.25).astype(int)))
    assert set(labels.tolist()) == {0, 1, 2}
    assert not np.array_equal(labels.numpy(), faces.labels)    # 3 eye classes, not the 7 expressions
    # two expressions with the same eye class: the labels cannot tell them apart
    pairs = {(int(e), int(y)) for e, y in zip(faces.labels, labels)}
    assert len({y for _, y in pairs}) < len({e for e, _ in pairs})


def test_standin_trains_on_eye_openness_saves_its_task_and_loads(tmp_path, monkeypatch):
    seen = {}
    step = fer_step()

    def spy(model, batch):
        seen.setdefault("classes", model.classifier[-1].out_features)
        seen.setdefault("labels", set()).update(batch["label"].tolist())
        return step(model, batch)

    folder, trained = standin_backbone(tiny_cfg(), spy, data_seed=401, folder=tmp_path / "standin", num_faces=FACES)
    assert trained
    assert seen["classes"] == len(STANDIN_CLASSES) and seen["labels"] <= {0, 1, 2}
    info = json.loads((tmp_path / "standin" / STANDIN_INFO).read_text())
    assert info["task"] == STANDIN_TASK and info["classes"] == list(STANDIN_CLASSES)
    assert standin_info(folder) == info
    model = ViTForFER(folder, 7, pooling="mean", verbose=False)       # the notebook's loading path
    saved = ViTModel.from_pretrained(folder)
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in model.vit.state_dict().items())
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    # cached: the second call reuses the folder
    assert standin_backbone(tiny_cfg(), step, data_seed=401, folder=folder, num_faces=FACES) == (folder, False)


@pytest.mark.parametrize("stale", ["no info file", "expressions"])
def test_a_stale_standin_folder_is_trained_again(tmp_path, stale):
    """An older stand-in (pretrained on the seven expressions, no standin.json) is not reused."""
    folder = tmp_path / "04_standin_vit"
    torch.manual_seed(0)
    old = ViTModel(quick_vit_config(), add_pooling_layer=False)
    old.save_pretrained(folder)
    if stale == "expressions":
        (folder / STANDIN_INFO).write_text(json.dumps({"task": "expressions"}))
    path, trained = standin_backbone(tiny_cfg(), fer_step(), data_seed=401, folder=folder, num_faces=FACES)
    assert trained and standin_info(path)["task"] == STANDIN_TASK
    new = ViTModel.from_pretrained(path).state_dict()
    assert any(not torch.equal(v, new[k]) for k, v in old.state_dict().items())
    assert not standin_backbone(tiny_cfg(), fer_step(), data_seed=401, folder=folder, num_faces=FACES)[1]
