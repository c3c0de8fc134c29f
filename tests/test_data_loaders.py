"""Real-format loaders on tiny fake data sets written into tmp_path (CSV, PNG, JSON)."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from lab_utils.data import (EMOTIONS, check_subject_leakage, class_index, get_paired_transforms,
                            get_transforms, load_captions, load_fer2013, load_paired_rgbt, parse_subject)


def _snapshot(root):
    return sorted((p, os.path.getmtime(os.path.join(p, f)), f)
                  for p, _, fs in os.walk(root) for f in fs)


# ---------------------------------------------------------------- FER2013 CSV
def _fer_csv(path, rows, header="emotion,pixels,Usage"):
    lines = [header] + [f'{e},"{p}",{u}' if " " in p else f"{e},{p},{u}" for e, p, u in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _pixels(value, n=2304):
    return " ".join([str(value)] * n)


def test_fer_csv_splits_in_file_order(tmp_path):
    rows = [(3, _pixels(10), "Training"), (0, _pixels(20), "Training"),
            (5, _pixels(255), "PublicTest"), (6, _pixels(0), "PrivateTest")]
    f = _fer_csv(tmp_path / "fer2013.csv", rows)
    before = _snapshot(tmp_path)
    splits = load_fer2013(tmp_path)
    assert list(splits) == ["Training", "PublicTest", "PrivateTest"]
    assert len(splits["Training"]) == 2 and splits["Training"].labels.tolist() == [3, 0]
    item = splits["PublicTest"][0]
    assert item["rgb"].shape == (3, 48, 48) and item["label"] == 5
    assert torch.allclose(item["rgb"], torch.ones(3, 48, 48))
    assert torch.allclose(splits["Training"][0]["rgb"], torch.full((3, 48, 48), 10 / 255))
    # with a transform: gray -> 3 channels, resized, normalised
    t = load_fer2013(f, transform=get_transforms("vit", 32))["Training"][1]["rgb"]
    assert t.shape == (3, 32, 32) and torch.allclose(t, torch.full((3, 32, 32), (20 / 255 - 0.5) / 0.5), atol=1e-4)
    assert _snapshot(tmp_path) == before  # never writes into the data folder


def test_fer_icml_variant_with_padded_columns(tmp_path):
    lines = ["emotion, Usage, pixels", f"2, Training, {_pixels(7)}", f"4, PrivateTest, {_pixels(9)}"]
    (tmp_path / "icml_face_data.csv").write_text("\n".join(lines) + "\n")
    splits = load_fer2013(tmp_path)
    assert set(splits) == {"Training", "PrivateTest"}
    assert splits["PrivateTest"].labels.tolist() == [4]


def test_fer2013_test_split_in_either_release(tmp_path):
    from lab_utils.data.loaders import fer2013_test_split

    (tmp_path / "csv").mkdir()
    csv = _fer_csv(tmp_path / "csv" / "fer2013.csv",
                   [(3, _pixels(1), "Training"), (5, _pixels(2), "PublicTest"), (6, _pixels(3), "PrivateTest")])
    name, test = fer2013_test_split(load_fer2013(csv))
    assert name == "PrivateTest" and test.labels.tolist() == [6]       # PublicTest is the validation set
    for split, cls in (("train", "happy"), ("test", "sad")):
        _png(tmp_path / "folders" / split / cls / "a.png", 100)
    name, test = fer2013_test_split(load_fer2013(tmp_path / "folders"))
    assert name == "test" and test.labels.tolist() == [EMOTIONS.index("sad")]
    with pytest.raises(ValueError, match=r"no FER2013 test split among \['Training'\].*PrivateTest"):
        fer2013_test_split({"Training": test})


def test_fer_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"FER2013 not found at .*nowhere.*Accepted: .*kaggle"):
        load_fer2013(tmp_path / "nowhere")
    bad = tmp_path / "bad.csv"
    bad.write_text("label,image\n1,2 3\n")
    with pytest.raises(ValueError, match=r"columns \['label', 'image'\].*\['emotion', 'pixels', 'Usage'\]"):
        load_fer2013(bad)
    short = _fer_csv(tmp_path / "short.csv", [(1, _pixels(1), "Training"), (1, _pixels(1, 2000), "Training")])
    with pytest.raises(ValueError, match=r"row 2 \(line 3 of the file\) has 2000 pixel values.*2304 = 48×48"):
        load_fer2013(short)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no CSV and no train/ or test/ folder"):
        load_fer2013(empty)


# ---------------------------------------------------------------- FER2013 folders
def _png(path, value, size=(48, 48), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0]) if mode == "L" else (size[1], size[0], 3), value, np.uint8)
    Image.fromarray(arr, mode=None).save(path)
    return path


def test_fer_folders_map_labels_by_name(tmp_path):
    for split in ("train", "test"):
        for name in ("angry", "happy", "surprise", "neutral"):
            _png(tmp_path / split / name / "a.png", 100)
    _png(tmp_path / "train" / "Fearful" / "x.png", 50, size=(64, 64))  # synonym + other size
    splits = load_fer2013(tmp_path)
    assert set(splits) == {"train", "test"}
    tr = splits["train"]
    # folder order is alphabetical (angry, Fearful, happy, neutral, surprise) but labels go by name
    assert sorted(tr.labels.tolist()) == sorted([0, 3, 5, 6, 2])
    assert tr[0]["rgb"].shape == (3, 48, 48)


def test_fer_folders_errors_and_truncated(tmp_path, capsys):
    _png(tmp_path / "train" / "happy" / "ok.png", 100)
    (tmp_path / "train" / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    splits = load_fer2013(tmp_path)
    assert len(splits["train"]) == 1 and [p.name for p in splits["train"].skipped] == ["broken.png"]
    assert "skipped 1 unreadable or truncated image(s)" in capsys.readouterr().out
    _png(tmp_path / "train" / "bored" / "b.png", 3)
    with pytest.raises(ValueError, match=r"unknown class name 'bored'.*known classes: \['angry'"):
        load_fer2013(tmp_path)


def test_class_index():
    assert [class_index(e) for e in EMOTIONS] == list(range(7))
    assert class_index("Surprised") == 5 and class_index("happiness") == 3


# ---------------------------------------------------------------- paired RGB + thermal
def _rgbt(root, n_subjects=6, per=4, classes=("happy", "sad", "fear")):
    for s in range(1, n_subjects + 1):
        for k in range(per):
            c = classes[k % len(classes)]
            name = f"S{s:02d}_{c}_{k:03d}"
            _png(root / "rgb" / c / f"{name}.jpg", 40 * (k + 1), size=(40, 30), mode="RGB")
            _png(root / "thermal" / c / f"{name}.png", 200, size=(20, 15))


def test_paired_rgbt_subject_disjoint(tmp_path):
    _rgbt(tmp_path)
    before = _snapshot(tmp_path)
    splits = load_paired_rgbt(tmp_path, image_size=32, thermal_channels=3)
    assert set(splits) == {"train", "val", "test"}
    assert sum(len(v) for v in splits.values()) == 24
    assert check_subject_leakage(splits) == {}
    item = splits["train"][0]
    assert item["rgb"].shape == (3, 32, 32) and item["thermal"].shape == (3, 32, 32)
    assert item["subject"] in range(1, 7) and EMOTIONS[item["label"]] in ("happy", "sad", "fear")
    assert torch.allclose(item["thermal"], torch.full((3, 32, 32), 200 / 255), atol=1e-3)
    tf = {k: get_paired_transforms("vit", 16, train=(k == "train")) for k in ("train", "val", "test")}
    s2 = load_paired_rgbt(tmp_path, image_size=None, transforms=tf)
    assert s2["test"][0]["rgb"].shape == (3, 16, 16) and s2["test"][0]["thermal"].shape == (3, 16, 16)
    assert _snapshot(tmp_path) == before


def test_paired_rgbt_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"paired RGB-thermal data not found.*rgb/<class>/<name>"):
        load_paired_rgbt(tmp_path / "missing")
    _rgbt(tmp_path, n_subjects=3)
    _png(tmp_path / "rgb" / "happy" / "S09_lonely.jpg", 1, mode="RGB")
    _png(tmp_path / "thermal" / "sad" / "S08_orphan.png", 1)
    with pytest.raises(ValueError, match=r"RGB without thermal partner: happy/S09_lonely.*thermal without RGB "
                                         r"partner: sad/S08_orphan.*on_unpaired='skip'"):
        load_paired_rgbt(tmp_path)
    splits = load_paired_rgbt(tmp_path, on_unpaired="skip", image_size=16)
    assert sum(len(v) for v in splits.values()) == 12
    assert "skipped 1 RGB and 1 thermal" in capsys.readouterr().out
    _png(tmp_path / "rgb" / "bored" / "S01_x.jpg", 1, mode="RGB")
    _png(tmp_path / "thermal" / "bored" / "S01_x.png", 1)
    with pytest.raises(ValueError, match="unknown class name 'bored'"):
        load_paired_rgbt(tmp_path, on_unpaired="skip")


def test_paired_rgbt_truncated_image_raises_naming_file(tmp_path):
    _rgbt(tmp_path, n_subjects=3)
    victim = next((tmp_path / "thermal" / "happy").iterdir())
    victim.write_bytes(victim.read_bytes()[:30])
    splits = load_paired_rgbt(tmp_path, image_size=16)
    allsets = [(ds, i) for ds in splits.values() for i in range(len(ds))]
    with pytest.raises(OSError, match=rf"cannot read image .*{victim.name}.*re-download it, or delete it"):
        for ds, i in allsets:
            ds[i]


def test_parse_subject_and_no_ids(tmp_path, capsys):
    assert parse_subject("S01_happy_2.png") == 1 and parse_subject("subject-12_x.jpg") == 12
    assert parse_subject("happy_001.png") is None and parse_subject("Sam_x.png") is None
    for k in range(6):
        _png(tmp_path / "rgb" / "sad" / f"img{k}.png", 1, mode="RGB", size=(8, 8))
        _png(tmp_path / "thermal" / "sad" / f"img{k}.png", 1, size=(8, 8))
    splits = load_paired_rgbt(tmp_path, image_size=8)
    assert sum(len(v) for v in splits.values()) == 6
    assert "carry no subject id" in capsys.readouterr().out


# ---------------------------------------------------------------- captions
def _images(folder, names):
    for n in names:
        _png(folder / n, 90, size=(20, 10), mode="RGB")


def test_flickr8k_captions_with_quoted_commas(tmp_path):
    _images(tmp_path / "Images", ["a.jpg", "b.jpg"])
    (tmp_path / "captions.txt").write_text(
        'image,caption\na.jpg,A dog runs .\na.jpg,"A dog, brown, runs on grass ."\nb.jpg,Two kids play .\n'
        'b.jpg,"Kids, playing"\n')
    ds = load_captions(tmp_path / "captions.txt", image_size=16)
    assert len(ds) == 2
    assert ds.captions[0] == ["A dog runs .", "A dog, brown, runs on grass ."]
    item = ds[1]
    assert item["image"].shape == (3, 16, 16) and item["captions"] == ["Two kids play .", "Kids, playing"]


def test_flickr_token_file_and_missing_images(tmp_path, capsys):
    _images(tmp_path / "imgs", ["a.jpg"])
    (tmp_path / "Flickr8k.token.txt").write_text("a.jpg#0\tA cat .\na.jpg#1\tA cat sits .\nz.jpg#0\tGone .\n")
    ds = load_captions(tmp_path / "Flickr8k.token.txt", images_dir=tmp_path / "imgs")
    assert len(ds) == 1 and ds.captions[0] == ["A cat .", "A cat sits ."]
    assert "1 of 2 images" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match=r"none of the 2 images named .* is in .*Pass images_dir="):
        load_captions(tmp_path / "Flickr8k.token.txt", images_dir=tmp_path)


def test_coco_and_karpathy(tmp_path):
    _images(tmp_path / "val2017", ["000001.jpg", "000002.jpg"])
    coco = {"images": [{"id": 1, "file_name": "000001.jpg"}, {"id": 2, "file_name": "000002.jpg"}],
            "annotations": [{"id": 10, "image_id": 1, "caption": "A bus."}, {"id": 11, "image_id": 2, "caption": "A cat."},
                            {"id": 12, "image_id": 1, "caption": "A red bus. "}]}
    (tmp_path / "captions_val2017.json").write_text(json.dumps(coco))
    ds = load_captions(tmp_path / "captions_val2017.json", tmp_path / "val2017", image_size=8)
    assert ds.captions[ds.files.index(tmp_path / "val2017" / "000001.jpg")] == ["A bus.", "A red bus."]
    karpathy = {"images": [{"filename": "000001.jpg", "split": "train", "sentences": [{"raw": "A bus."}]},
                           {"filename": "000002.jpg", "split": "test", "sentences": [{"raw": "A cat."}, {"raw": "Cat!"}]}]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(karpathy))
    splits = load_captions(tmp_path / "dataset_coco.json", tmp_path / "val2017", image_size=8)
    assert len(splits["train"]) == 1 and splits["test"].captions == [["A cat.", "Cat!"]] and len(splits["val"]) == 0


def test_caption_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"captions file not found.*flickr8k"):
        load_captions(tmp_path / "nope.txt")
    (tmp_path / "c.txt").write_text("file,text\na.jpg,hi\n")
    with pytest.raises(ValueError, match=r"columns \['file', 'text'\].*'image,caption'"):
        load_captions(tmp_path / "c.txt")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_captions(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(ValueError, match="no 'images' list"):
        load_captions(tmp_path / "y.json")
