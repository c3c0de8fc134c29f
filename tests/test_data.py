"""The synthetic face world: determinism, shapes, ranges, design properties, splits, transforms."""
import time

import numpy as np
import pytest
import torch

from lab_utils.data import (EMOTIONS, ITEMS_PER_SUBJECT, THERMAL_CUES, PairedRandomHorizontalFlip,
                            SynthFaceCaptions, SynthFER, check_subject_leakage, generate_faces,
                            get_paired_transforms, get_transforms, paired_hflip_batch, position_words,
                            subject_split, thermal_to_celsius)


def test_emotions_are_fer2013_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize("size", [32, 64])
def test_item_shapes_ranges(size):
    ds = SynthFER(20, image_size=size, seed=3)
    item = ds[5]
    assert set(item) == {"rgb", "thermal", "label", "subject"}
    assert item["rgb"].shape == (3, size, size) and item["rgb"].dtype == torch.float32
    assert item["thermal"].shape == (1, size, size)
    for k in ("rgb", "thermal"):
        assert 0.0 <= item[k].min() and item[k].max() <= 1.0
    assert isinstance(item["label"], int) and 0 <= item["label"] < 7
    assert item["subject"] == 5 // ITEMS_PER_SUBJECT
    ds3 = SynthFER(20, image_size=size, seed=3, thermal_channels=3)
    t3 = ds3[5]["thermal"]
    assert t3.shape == (3, size, size) and torch.equal(t3[0], t3[2]) and torch.equal(t3[:1], item["thermal"])


def test_any_resolution():
    for size in (32, 48, 96, 224):
        out = generate_faces([0, 1], size, seed=0)
        assert out["rgb"].shape == (2, 3, size, size) and out["thermal"].shape == (2, size, size)


def test_determinism_independent_of_count_and_order():
    a = SynthFER(30, 32, seed=7)
    b = SynthFER(100, 32, seed=7)
    for i in (0, 13, 29):
        assert torch.equal(a[i]["rgb"], b[i]["rgb"]) and torch.equal(a[i]["thermal"], b[i]["thermal"])
        assert a[i]["label"] == b[i]["label"]
    # rendering items one at a time, in reverse order, gives the same pixels as one batch
    batch = generate_faces(np.arange(30), 32, seed=7)
    for i in (29, 4, 17):
        single = generate_faces([i], 32, seed=7)
        assert np.array_equal(single["rgb"][0], batch["rgb"][i])
        assert np.array_equal(single["thermal"][0], batch["thermal"][i])
    c = SynthFER(30, 32, seed=8)
    assert not torch.equal(a[0]["rgb"], c[0]["rgb"])


def test_labels_balanced_per_subject_and_cheap_arrays():
    ds = SynthFER(ITEMS_PER_SUBJECT * 5, 32, seed=0)
    assert ds._cache is None  # .labels / .subjects do not render
    assert np.bincount(ds.labels, minlength=7).tolist() == [10] * 7
    assert ds.labels[3] == ds[3]["label"]
    t = ds.tensors()
    assert t["rgb"].shape == (70, 3, 32, 32) and torch.equal(t["label"], torch.as_tensor(ds.labels))
    assert torch.equal(t["rgb"][9], ds[9]["rgb"])


def test_tensors_as_bytes_and_the_render_size():
    from lab_utils.data.synthetic import MAX_RENDER_SIZE, render_size

    ds = SynthFER(ITEMS_PER_SUBJECT, 32, seed=2, thermal_channels=3)
    floats, stored = ds.tensors(), ds.tensors(torch.uint8)
    assert stored["rgb"].dtype == stored["thermal"].dtype == torch.uint8
    assert stored["thermal"].shape == (ITEMS_PER_SUBJECT, 3, 32, 32)
    assert torch.equal(stored["rgb"].float() / 255.0, floats["rgb"])     # the same pixels, 4× smaller
    assert torch.equal(stored["thermal"].float() / 255.0, floats["thermal"])
    caps = SynthFaceCaptions(ITEMS_PER_SUBJECT, 32, seed=2, captions_per_image=2)
    assert torch.equal(caps.tensors(torch.uint8)["image"], stored["rgb"])
    with pytest.raises(ValueError, match="torch.uint8"):
        ds.tensors(torch.int64)
    assert [render_size(s) for s in (16, 32, 64, 96, 224)] == [16, 32, 64, 64, 64] and MAX_RENDER_SIZE == 64
    with pytest.raises(ValueError, match="between 16 and 512"):
        render_size(8)


def test_thermal_follows_the_cues():
    """Class means of regional temperature match the design table's signs."""
    ds = SynthFER(ITEMS_PER_SUBJECT * 30, 64, seed=0)
    attrs = ds.attributes()
    T = thermal_to_celsius(ds.tensors()["thermal"][:, 0].numpy())
    # nose tip in image coordinates (face centre + scale * local (0, 0.22)), no rotation needed for a mean
    S = 64
    cx = ((attrs["cx"] + 1) / 2 * S).astype(int)
    ny = ((attrs["cy"] + attrs["scale"] * 0.22 + 1) / 2 * S).astype(int)
    nose = T[np.arange(len(T)), ny, cx]
    labels = ds.labels
    mean = {e: nose[labels == k].mean() for k, e in enumerate(EMOTIONS)}
    for cold in ("fear", "surprise", "disgust"):
        assert THERMAL_CUES[cold]["nose"] < 0
        assert mean[cold] < mean["neutral"] - 0.8, (cold, mean)
    assert abs(mean["happy"] - mean["neutral"]) < 0.8


def test_synthfer_bad_arguments():
    with pytest.raises(ValueError, match="thermal_channels"):
        SynthFER(10, 32, thermal_channels=2)
    with pytest.raises(ValueError, match="image_size"):
        SynthFER(10, 8)
    with pytest.raises(ValueError, match="num_samples"):
        SynthFER(0)
    with pytest.raises(IndexError):
        SynthFER(5, 32)[5]


def test_captions_varied_and_deterministic():
    ds = SynthFaceCaptions(40, image_size=32, seed=1)
    item = ds[3]
    assert item["image"].shape == (3, 32, 32) and isinstance(item["label"], int)
    caps = item["captions"]
    assert len(caps) >= 2 and len(set(caps)) == len(caps)
    assert all(isinstance(c, str) and c for c in caps)
    assert ds.captions == SynthFaceCaptions(40, image_size=64, seed=1).captions
    assert SynthFaceCaptions(10, 32, seed=1).captions == ds.captions[:10]
    all_caps = [c for cs in ds.captions for c in cs]
    assert len(set(all_caps)) > 0.8 * len(all_caps)
    # the face is the same as SynthFER's RGB
    assert torch.equal(item["image"], SynthFER(40, 32, seed=1)[3]["rgb"])
    # a caption names the expression with one of its words
    from lab_utils.data import EXPRESSION_WORDS
    from lab_utils.data.captions import EXPRESSION_NOUNS
    for cs, lab in zip(ds.captions, ds.labels):
        words = EXPRESSION_WORDS[EMOTIONS[lab]] + EXPRESSION_NOUNS[EMOTIONS[lab]]
        assert all(any(w in c for w in words) for c in cs), cs
    glasses = ds._faces.attributes()["glasses"] if ds._faces._cache else None
    assert glasses is None or len(glasses) == 40


def test_position_words():
    assert position_words(-0.15, -0.15) == "in the top left"
    assert position_words(0.0, 0.0) == "in the centre"
    assert position_words(0.15, 0.0) == "on the right"
    assert position_words(0.0, 0.15) == "at the bottom"


def test_subject_split_properties():
    ds = SynthFER(ITEMS_PER_SUBJECT * 40 + 5, 32, seed=0)  # a partial last subject too
    train, val, test = subject_split(ds, seed=0)
    idx = [set(s.indices) for s in (train, val, test)]
    assert sum(len(s) for s in idx) == len(ds) and set().union(*idx) == set(range(len(ds)))
    subj = [set(ds.subjects[list(s)]) for s in idx]
    assert not (subj[0] & subj[1] or subj[0] & subj[2] or subj[1] & subj[2])
    assert check_subject_leakage({"train": train, "val": val, "test": test}) == {}
    assert abs(len(train) / len(ds) - 0.7) < 0.05 and len(val) > 0 and len(test) > 0
    assert ds._cache is None  # splitting never renders
    assert train.labels.shape == (len(train),) and np.array_equal(train.subjects, ds.subjects[train.indices])
    # deterministic per seed, different across seeds
    assert subject_split(ds, seed=0)[2].indices == test.indices
    assert subject_split(ds, seed=1)[2].indices != test.indices
    with pytest.raises(ValueError, match="fractions"):
        subject_split(ds, fractions=(0.5, 0.2))


def test_subject_split_on_plain_dataset_and_leak_check():
    items = [{"subject": i // 3, "label": i % 7} for i in range(30)]
    tr, va, te = subject_split(items, fractions=(0.6, 0.2, 0.2))
    assert sorted(tr.indices + va.indices + te.indices) == list(range(30))
    from torch.utils.data import Subset
    leaky = {"train": Subset(items, [0, 1, 3]), "test": Subset(items, [2, 9])}
    assert check_subject_leakage(leaky) == {0: ["train", "test"]}
    from lab_utils.data import assert_no_subject_leakage
    with pytest.raises(ValueError, match="subject leakage: 1 subject"):
        assert_no_subject_leakage(leaky)


def test_paired_flip_flips_both_or_neither():
    ds = SynthFER(40, 32, seed=0, transform=PairedRandomHorizontalFlip(p=0.5))
    raw = SynthFER(40, 32, seed=0)
    torch.manual_seed(0)
    flipped = 0
    for i in range(40):
        a, b = ds[i], raw[i]
        f_rgb = torch.equal(a["rgb"], b["rgb"].flip(-1))
        f_th = torch.equal(a["thermal"], b["thermal"].flip(-1))
        assert f_rgb == f_th
        assert f_rgb or torch.equal(a["rgb"], b["rgb"])
        flipped += f_rgb
    assert 5 < flipped < 35
    rgb, th = torch.rand(16, 3, 8, 8), torch.rand(16, 1, 8, 8)
    r2, t2 = paired_hflip_batch(rgb, th, generator=torch.Generator().manual_seed(0))
    for i in range(16):
        fl = torch.equal(r2[i], rgb[i].flip(-1))
        assert fl == torch.equal(t2[i], th[i].flip(-1))


def test_transforms():
    gray = torch.rand(1, 48, 48)
    out = get_transforms("vit", 224)(gray)
    assert out.shape == (3, 224, 224)
    assert torch.allclose(out[0], out[2])
    assert torch.allclose(get_transforms("none", 48)(gray)[1], gray[0])
    x = torch.full((3, 32, 32), 0.5)
    clip = get_transforms("clip", 32)(x)
    assert torch.allclose(clip[0], torch.tensor((0.5 - 0.48145466) / 0.26862954), atol=1e-5)
    with pytest.raises(ValueError, match="unknown backbone 'bert'.*known"):
        get_transforms("bert")
    pt = get_paired_transforms("resnet", 64, train=True, thermal_channels=3)
    item = pt(SynthFER(3, 32)[0])
    assert item["rgb"].shape == (3, 64, 64) and item["thermal"].shape == (3, 64, 64)
    assert item["thermal"].min() >= -1 and item["thermal"].max() <= 1


def test_generation_speed_sanity():
    """Not a strict benchmark: generous floor (targets: 2,000 pairs/s at 32 px, 800 at 64 px alone)."""
    generate_faces(np.arange(64), 32)  # warm up
    t = time.perf_counter()
    generate_faces(np.arange(1000), 32)
    rate = 1000 / (time.perf_counter() - t)
    assert rate > 300, f"{rate:.0f} pairs/s at 32 px"


def test_normalize_is_torchvisions_per_channel_and_one_number_when_uniform():
    """One normalisation for every model: per channel it equals torchvision's Normalize; the
    ViT's uniform 0.5/0.5 is one number, so one-channel thermal maps and six fused channels take it."""
    from torchvision.transforms import v2

    from lab_utils.data.transforms import NORMALIZATION, normalize

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    mean, std = NORMALIZATION["clip"]
    assert torch.equal(normalize(x, mean, std), v2.Normalize(list(mean), list(std))(x))
    assert torch.equal(normalize(x, torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)),
                       normalize(x, mean, std))                      # a model's buffers give the same numbers
    assert torch.equal(normalize(x[:, :1], *NORMALIZATION["vit"]), (x[:, :1] - 0.5) / 0.5)
    assert normalize(torch.rand(2, 6, 4, 4), *NORMALIZATION["vit"]).shape == (2, 6, 4, 4)
    with pytest.raises(RuntimeError):
        normalize(x[:, :1].expand(2, 2, 8, 8), mean, std)           # 3 statistics, 2 channels


def test_people_of_follows_subsets_and_counts_an_unknown_subject_as_a_person_of_its_own():
    """The person ids a people bootstrap resamples: read from ``.subjects`` through Subsets (nothing
    rendered); an item with subject -1 (no id in its file name) is nobody else's; a data set with no
    subject ids at all gives None (items are then resampled one by one)."""
    import numpy as np
    from torch.utils.data import Subset
    from lab_utils.data.splits import people_of

    class Faces:
        subjects = np.array([3, 3, -1, 5, -1, 5])
    got = people_of(Subset(Subset(Faces(), [0, 1, 2, 3, 4, 5]), [4, 2, 0, 1]))
    assert got[2] == got[3] == 3 and len({got[0], got[1], 3}) == 3
    assert people_of(Faces()).tolist()[:2] == [3, 3]

    class NoIds:
        pass
    assert people_of(NoIds()) is None

    class AllUnknown:
        subjects = np.array([-1, -1])
    assert people_of(AllUnknown()) is None
