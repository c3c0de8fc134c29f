"""Loaders for the real data sets the full profile uses (see ``data/README.md``).

* :func:`load_fer2013` — FER2013 as Kaggle's CSV (``emotion,pixels,Usage``, also the
  ``icml_face_data.csv`` variant with space-padded column names) or as the image-folder
  release (``train/<class>/*.png``, ``test/<class>/*.png``); labels mapped **by name**.
* :func:`load_paired_rgbt` — paired RGB + thermal images in class folders, matched by file
  name, split by subject.
* :func:`load_captions` — Flickr8k ``captions.txt``, COCO caption JSON, Karpathy split JSON.

Loaders only read: they never write into the data folders. Bad input raises an error that
says what was seen, what is allowed and what to do.
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..paths import data_dir
from .splits import LabeledSubset, assert_no_subject_leakage, subject_split
from .synthetic import EMOTIONS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

FER2013_HELP = ("Download FER2013 from https://www.kaggle.com/datasets/msambare/fer2013 (image folders) "
                "or https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-"
                "recognition-challenge/data (fer2013.csv / icml_face_data.csv) and put it at data/fer2013/ "
                "so that data/fer2013/fer2013.csv or data/fer2013/train/<class>/*.png exists "
                "(see data/README.md).")
RGBT_HELP = ("Put paired images at data/rgbt/rgb/<class>/<name> and data/rgbt/thermal/<class>/<name> "
             "(the same file name in both; subject ids as a name prefix such as S01_...), see data/README.md.")
CAPTIONS_HELP = ("Flickr8k: https://www.kaggle.com/datasets/adityajn105/flickr8k (captions.txt + Images/) "
                 "to data/flickr8k/; COCO: https://cocodataset.org/#download (annotations/captions_*.json + "
                 "images) to data/coco/; see data/README.md.")

# Names used for the 7 classes by the releases we know; mapped to EMOTIONS by name.
CLASS_ALIASES: dict[str, str] = {
    **{e: e for e in EMOTIONS},
    "anger": "angry", "mad": "angry", "disgusted": "disgust", "disgusting": "disgust",
    "fearful": "fear", "afraid": "fear", "scared": "fear", "happiness": "happy", "joy": "happy",
    "sadness": "sad", "surprised": "surprise", "neutrality": "neutral", "calm": "neutral",
}


def class_index(name: str, where: str = "") -> int:
    """Label of a class name (case-insensitive, common synonyms accepted) in :data:`EMOTIONS` order."""
    key = name.strip().lower()
    if key not in CLASS_ALIASES:
        raise ValueError(f"unknown class name {name!r}{' in ' + where if where else ''}; known classes: "
                         f"{list(EMOTIONS)} (also accepted: {sorted(set(CLASS_ALIASES) - set(EMOTIONS))}). "
                         f"Rename the folder to one of the known names or remove it.")
    return EMOTIONS.index(CLASS_ALIASES[key])


def _missing(path: Path, what: str, accepted: str, help_text: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} not found at {path}. Accepted: {accepted}. {help_text}")


def _read_image(path: Path, mode: str) -> np.ndarray:
    """Read an image file as a uint8 (H, W) or (H, W, 3) array (16-bit images are scaled to 8 bit)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                hi = 65535.0 if arr.max() > 255 else 255.0
                arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, -1) if mode == "RGB" else arr
            return np.asarray(im.convert(mode))
    except Exception as err:  # PIL raises several types for unreadable / truncated files
        raise OSError(f"cannot read image {path}: {type(err).__name__}: {err}. The file is unreadable "
                      f"or truncated: re-download it, or delete it to skip it.") from err


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) → float (C, H, W) in [0, 1]."""
    t = torch.from_numpy(np.array(arr))  # a writable copy
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return t.float().div_(255.0)


# ======================================================================================
# FER2013
# ======================================================================================
class FER2013(Dataset):
    """FER2013 images in memory: item ``{"rgb": FloatTensor[3, 48, 48] in [0, 1] (the gray face
    repeated, same format as SynthFER's RGB), "label": int}``, or the ``transform``'s output
    (applied to the (1, 48, 48) gray tensor, e.g. ``get_transforms("vit", 224)``).
    ``.labels`` (int64 array) and ``.classes`` (= EMOTIONS)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None = None,
                 image_key: str = "rgb"):
        self.images = images  # uint8 (N, 48, 48)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform, self.image_key, self.classes = transform, image_key, EMOTIONS

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        x = torch.from_numpy(self.images[i])[None].float().div_(255.0)
        x = self.transform(x) if self.transform is not None else x.expand(3, -1, -1).clone()
        return {self.image_key: x, "label": int(self.labels[i])}

    def __repr__(self) -> str:
        return f"FER2013({len(self)} images, {np.bincount(self.labels, minlength=7).tolist()} per class)"


FER2013_COLUMNS = ("emotion", "pixels", "Usage")


def _read_fer_csv(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import pandas as pd
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:
        raise ValueError(f"cannot parse {path} as CSV ({err}); expected FER2013's columns "
                         f"{list(FER2013_COLUMNS)}. {FER2013_HELP}") from err
    df.columns = [str(c).strip() for c in df.columns]  # icml_face_data.csv pads names with spaces
    lower = {c.lower(): c for c in df.columns}
    missing = [c for c in FER2013_COLUMNS if c.lower() not in lower]
    if missing:
        raise ValueError(f"{path} has columns {list(df.columns)}, but FER2013's CSV needs "
                         f"{list(FER2013_COLUMNS)} (missing: {missing}). Is this the right file? {FER2013_HELP}")
    emo, pix, usage = (df[lower[c.lower()]] for c in FER2013_COLUMNS)
    n = len(df)
    images = np.empty((n, 48, 48), np.uint8)
    labels = np.empty(n, np.int64)
    for r, (e, p) in enumerate(zip(emo.tolist(), pix.tolist())):
        values = p.split()
        if len(values) != 48 * 48:
            raise ValueError(f"{path}: data row {r + 1} (line {r + 2} of the file) has {len(values)} pixel "
                             f"values; FER2013 rows have 2304 = 48×48. The file is damaged or truncated: "
                             f"re-download it. {FER2013_HELP}")
        try:
            images[r] = np.asarray(values, dtype=np.int64).reshape(48, 48)
            labels[r] = int(e)
        except ValueError as err:
            raise ValueError(f"{path}: data row {r + 1} (line {r + 2}) is not numeric ({err}); expected an "
                             f"emotion 0–6 and 2304 pixel values 0–255 separated by spaces.") from err
        if not 0 <= labels[r] < 7:
            raise ValueError(f"{path}: data row {r + 1} (line {r + 2}) has emotion {labels[r]}; FER2013 "
                             f"uses 0–6 = {list(EMOTIONS)}.")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    usage = usage.str.strip().to_numpy()
    for split in dict.fromkeys(usage.tolist()):  # splits in file order
        m = usage == split
        out[split] = (images[m], labels[m])
    return out


def _read_fer_folders(root: Path, splits: Sequence[str]) -> tuple[dict, dict]:
    out, skipped = {}, {}
    for split in splits:
        imgs, labels, bad = [], [], []
        class_dirs = sorted(p for p in (root / split).iterdir() if p.is_dir())
        if not class_dirs:
            raise _missing(root / split, "class folders", f"{split}/<class>/*.png with classes {list(EMOTIONS)}",
                           FER2013_HELP)
        for cdir in class_dirs:
            label = class_index(cdir.name, where=str(root / split))
            for f in sorted(cdir.iterdir()):
                if f.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                try:
                    arr = _read_image(f, "L")
                except OSError:
                    bad.append(f)
                    continue
                if arr.shape != (48, 48):
                    from PIL import Image
                    arr = np.asarray(Image.fromarray(arr).resize((48, 48), Image.BILINEAR))
                imgs.append(arr)
                labels.append(label)
        if bad:
            skipped[split] = bad
            print(f"load_fer2013: skipped {len(bad)} unreadable or truncated image(s) in {root / split} "
                  f"(e.g. {', '.join(str(b.name) for b in bad[:5])}); re-download them to use them.")
        if not imgs:
            raise ValueError(f"no readable images in {root / split}/<class>/ (extensions {IMAGE_EXTENSIONS}). "
                             f"{FER2013_HELP}")
        out[split] = (np.stack(imgs), np.asarray(labels, np.int64))
    return out, skipped


def load_fer2013(path: str | os.PathLike | None = None, transform: Callable | None = None,
                 image_key: str = "rgb") -> dict[str, FER2013]:
    """Load FER2013 as ``{split: FER2013 dataset}``.

    ``path``: the CSV file (``fer2013.csv`` or ``icml_face_data.csv``), or a folder holding
    one of them, or the image-folder release (``train/<class>/*.png``, ``test/<class>/*.png``);
    default ``data/fer2013``. Splits: ``Training`` / ``PublicTest`` / ``PrivateTest`` (CSV, in
    file order) or ``train`` / ``test`` (folders). Folder names are mapped to labels by
    **name** (``angry`` → 0 … ``neutral`` → 6; alphabetical folder order would be wrong).
    Unreadable images in folders are skipped and counted (printed); ``.skipped`` lists them.

    Item: ``{"rgb": FloatTensor[3, 48, 48] in [0, 1], "label": int}`` (see :class:`FER2013`).
    """
    root = Path(path) if path is not None else data_dir() / "fer2013"
    accepted = ("fer2013.csv / icml_face_data.csv (columns emotion,pixels,Usage) or folders "
                "train/<class>/*.png and test/<class>/*.png")
    if not root.exists():
        raise _missing(root, "FER2013", accepted, FER2013_HELP)
    if root.is_file():
        return {k: FER2013(*v, transform=transform, image_key=image_key) for k, v in _read_fer_csv(root).items()}
    for name in ("fer2013.csv", "icml_face_data.csv", "fer2013/fer2013.csv"):
        if (root / name).is_file():
            return {k: FER2013(*v, transform=transform, image_key=image_key)
                    for k, v in _read_fer_csv(root / name).items()}
    splits = [s for s in ("train", "test") if (root / s).is_dir()]
    if not splits:
        found = sorted(p.name for p in root.iterdir())[:10]
        raise _missing(root, "FER2013 (no CSV and no train/ or test/ folder; found "
                       f"{found or 'an empty folder'})", accepted, FER2013_HELP)
    data, skipped = _read_fer_folders(root, splits)
    out = {}
    for k, v in data.items():
        out[k] = FER2013(*v, transform=transform, image_key=image_key)
        out[k].skipped = skipped.get(k, [])
    return out


FER2013_TEST_SPLITS = ("PrivateTest", "test")
"""The test split's name in each release: the CSV's ``PrivateTest`` (its ``PublicTest`` is the
validation set), the folder release's ``test``."""


def fer2013_test_split(data: dict[str, FER2013]) -> tuple[str, FER2013]:
    """``(name, dataset)`` of the test split in :func:`load_fer2013`'s result (3,589 faces in
    either release): the first of :data:`FER2013_TEST_SPLITS` present."""
    for name in FER2013_TEST_SPLITS:
        if name in data:
            return name, data[name]
    raise ValueError(f"no FER2013 test split among {sorted(data)}; expected one of {FER2013_TEST_SPLITS} "
                     f"(the CSV's Usage column or the folder release's test/ folder). {FER2013_HELP}")


# ======================================================================================
# Paired RGB + thermal
# ======================================================================================
SUBJECT_PATTERN = re.compile(r"^(?:s|subj|subject|p|id)[-_]?(\d+)(?=[-_.]|$)", re.IGNORECASE)


def parse_subject(name: str) -> int | None:
    """Subject id from a file name such as ``S01_happy_003.png`` / ``subject-12_x.jpg``, else ``None``."""
    m = SUBJECT_PATTERN.match(Path(name).stem + "_")
    return int(m.group(1)) if m else None


class PairedRGBT(Dataset):
    """Paired RGB + thermal image files; item ``{"rgb": FloatTensor[3, H, W], "thermal":
    FloatTensor[C, H, W] (C = thermal_channels), "label": int, "subject": int (-1 unknown)}``,
    all resized to ``image_size`` (or the ``transform``'s output, applied to the item dict,
    e.g. ``get_paired_transforms``). Images are read lazily; ``.labels`` / ``.subjects`` /
    ``.files`` never read pixels."""

    def __init__(self, files: list[tuple[Path, Path]], labels: Sequence[int], subjects: Sequence[int],
                 image_size: int | None = 224, thermal_channels: int = 1, transform: Callable | None = None):
        self.files = list(files)
        self.labels = np.asarray(labels, np.int64)
        self.subjects = np.asarray(subjects, np.int64)
        self.image_size, self.thermal_channels, self.transform = image_size, thermal_channels, transform
        self.classes = EMOTIONS

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path, mode: str) -> torch.Tensor:
        t = _to_tensor(_read_image(path, mode))
        if self.image_size is not None and tuple(t.shape[-2:]) != (self.image_size, self.image_size):
            from torchvision.transforms.v2 import functional as F
            t = F.resize(t, [self.image_size, self.image_size], antialias=True)
        return t

    def __getitem__(self, i: int) -> dict:
        rgb_path, th_path = self.files[i]
        th = self._load(th_path, "L")
        item = {"rgb": self._load(rgb_path, "RGB"),
                "thermal": th.expand(3, -1, -1).clone() if self.thermal_channels == 3 else th,
                "label": int(self.labels[i]), "subject": int(self.subjects[i])}
        return self.transform(item) if self.transform is not None else item


def _scan(root: Path, modality: str) -> dict[str, tuple[Path, str]]:
    """{stem: (file, class name)} for root/<modality>/<class>/* or root/<class>/<modality>/*."""
    found: dict[str, tuple[Path, str]] = {}
    layouts = [(root / modality, None)] if (root / modality).is_dir() else \
        [(c / modality, c.name) for c in sorted(root.iterdir()) if (c / modality).is_dir()]
    for base, cls in layouts:
        dirs = [(d, d.name) for d in sorted(base.iterdir()) if d.is_dir()] if cls is None else [(base, cls)]
        for d, name in dirs:
            for f in sorted(d.iterdir()):
                if f.suffix.lower() in IMAGE_EXTENSIONS:
                    key = f"{CLASS_ALIASES.get(name.lower(), name)}/{f.stem}"
                    found[key] = (f, name)
    return found


def _rgbt_pairs(root: Path, on_unpaired: str) -> list[tuple[Path, Path, str]]:
    """``(RGB file, thermal file, class folder name)`` of each pair under ``root``, in key order;
    files without a partner raise (``on_unpaired="raise"``) or are counted and skipped."""
    rgb, th = _scan(root, "rgb"), _scan(root, "thermal")
    if not rgb or not th:
        raise _missing(root, f"{'RGB' if not rgb else 'thermal'} images", "image files "
                       f"{IMAGE_EXTENSIONS} under rgb/<class>/ and thermal/<class>/", RGBT_HELP)
    only_rgb, only_th = sorted(set(rgb) - set(th)), sorted(set(th) - set(rgb))
    if (only_rgb or only_th) and on_unpaired == "raise":
        def show(keys):
            return ", ".join(keys[:10]) + (f" … ({len(keys)} in all)" if len(keys) > 10 else "") or "none"
        raise ValueError(f"unpaired images under {root}: RGB without thermal partner: {show(only_rgb)}; "
                         f"thermal without RGB partner: {show(only_th)}. Every rgb/<class>/<name> needs "
                         f"thermal/<class>/<same name> (extension may differ). Add the partners, remove "
                         f"the extra files, or pass on_unpaired='skip' to drop them.")
    if only_rgb or only_th:
        print(f"load_paired_rgbt: skipped {len(only_rgb)} RGB and {len(only_th)} thermal file(s) without a partner")
    keys = sorted(set(rgb) & set(th))
    if not keys:
        raise ValueError(f"no RGB/thermal pairs under {root} (no file name appears in both). {RGBT_HELP}")
    return [(rgb[k][0], th[k][0], rgb[k][1]) for k in keys]


def _split_rgbt(full: PairedRGBT, subjects: np.ndarray, fractions: Sequence[float],
                seed: int) -> dict[str, Dataset]:
    """``{"train", "val", "test"}`` parts of ``full``: subject-disjoint (checked) when every file
    name carries a subject id, else a seeded random split (and a note saying so)."""
    n = len(subjects)
    if (subjects >= 0).all():
        parts = subject_split(full, fractions, seed)
    else:
        print(f"load_paired_rgbt: {int((subjects < 0).sum())} of {n} file names carry no subject id "
              f"(like S01_...); using a seeded random split, so the same person may be in train and test.")
        order = np.random.default_rng(seed).permutation(n)
        cuts = (np.cumsum(fractions)[:-1] * n).round().astype(int)
        parts = tuple(LabeledSubset(full, sorted(p.tolist())) for p in np.split(order, cuts))
    names = ("train", "val", "test")[:len(parts)] if len(parts) <= 3 else [str(i) for i in range(len(parts))]
    out: dict[str, Dataset] = dict(zip(names, parts))
    if (subjects >= 0).all():
        assert_no_subject_leakage(out)
    return out


def load_paired_rgbt(root: str | os.PathLike | None = None, image_size: int | None = 224,
                     fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0,
                     thermal_channels: int = 1, on_unpaired: str = "raise",
                     transforms: dict[str, Callable] | None = None) -> dict[str, Dataset]:
    """Load paired RGB + thermal images as ``{"train", "val", "test"}`` datasets.

    Layouts: ``root/rgb/<class>/<name>`` + ``root/thermal/<class>/<name>``, or
    ``root/<class>/rgb/<name>`` + ``root/<class>/thermal/<name>``; default root ``data/rgbt``.
    Pairs are matched by class and file name without extension (``x.jpg`` ↔ ``x.png``).
    Subject ids come from name prefixes (``S01_…``); with them the split is subject-disjoint
    (checked), without them it is a seeded random split and a note is printed.
    ``on_unpaired``: ``"raise"`` (default; lists the files without a partner) or ``"skip"``.
    ``transforms``: optional ``{split: transform}`` for the item dicts (e.g. ``get_paired_transforms``).
    Items: see :class:`PairedRGBT`.
    """
    root = Path(root) if root is not None else data_dir() / "rgbt"
    if not root.is_dir():
        raise _missing(root, "paired RGB-thermal data", "rgb/<class>/<name> + thermal/<class>/<name>", RGBT_HELP)
    if on_unpaired not in ("raise", "skip"):
        raise ValueError(f"on_unpaired must be 'raise' or 'skip', got {on_unpaired!r}")
    files, labels, subjects = [], [], []
    for fr, ft, cname in _rgbt_pairs(root, on_unpaired):
        labels.append(class_index(cname, where=str(fr.parent)))
        files.append((fr, ft))
        s = parse_subject(fr.name)
        subjects.append(-1 if s is None else s)
    subjects_arr = np.asarray(subjects)
    out = _split_rgbt(PairedRGBT(files, labels, subjects_arr, image_size, thermal_channels), subjects_arr,
                      fractions, seed)
    if transforms:
        out = {k: _TransformedSubset(v, transforms.get(k)) for k, v in out.items()}
    return out


class _TransformedSubset(Dataset):
    """A split with its own transform (train augments, val/test do not)."""

    def __init__(self, subset: LabeledSubset, transform: Callable | None):
        self.subset, self.transform = subset, transform
        self.labels, self.subjects, self.classes = subset.labels, subset.subjects, EMOTIONS

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, i: int) -> dict:
        item = self.subset[i]
        return self.transform(item) if self.transform is not None else item


# ======================================================================================
# Captions: Flickr8k, COCO, Karpathy splits
# ======================================================================================
class CaptionDataset(Dataset):
    """Images with several captions: item ``{"image": FloatTensor[3, H, W] (resized to
    ``image_size`` unless None, or the ``transform``'s output), "captions": list[str],
    "file": str}``. ``.captions`` (list of lists) and ``.files`` never read pixels."""

    def __init__(self, files: list[Path], captions: list[list[str]], image_size: int | None = 224,
                 transform: Callable | None = None):
        self.files, self.captions = files, captions
        self.image_size, self.transform = image_size, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        img = _to_tensor(_read_image(self.files[i], "RGB"))
        if self.transform is not None:
            img = self.transform(img)
        elif self.image_size is not None:
            from torchvision.transforms.v2 import functional as F
            img = F.resize(img, [self.image_size, self.image_size], antialias=True)
        return {"image": img, "captions": list(self.captions[i]), "file": self.files[i].name}


def _read_flickr_txt(path: Path) -> dict[str, list[str]]:
    """Flickr8k captions.txt (``image,caption`` header, quoted commas) or the older
    ``Flickr8k.token.txt`` (``name.jpg#0<TAB>caption``)."""
    caps: dict[str, list[str]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as fh:
        first = fh.readline()
        fh.seek(0)
        if "\t" in first and "#" in first.split("\t")[0]:
            for line in fh:
                if line.strip():
                    name, text = line.rstrip("\n").split("\t", 1)
                    caps[name.split("#")[0]].append(text.strip())
            return dict(caps)
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        if header[:2] != ["image", "caption"]:
            raise ValueError(f"{path} starts with columns {header}; Flickr8k's captions.txt needs the header "
                             f"'image,caption' (one line per caption, captions with commas in quotes). "
                             f"{CAPTIONS_HELP}")
        for r, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2:
                raise ValueError(f"{path}: line {r} has {len(row)} field(s), expected 'image,caption': {row}")
            caps[row[0].strip()].append(",".join(row[1:]).strip())
    return dict(caps)


def _read_coco_json(data: dict, path: Path) -> tuple[dict[str, list[str]], dict[str, str] | None]:
    """COCO ``{"images": [...], "annotations": [...]}`` or Karpathy ``{"images": [{"filename",
    "sentences", "split", "filepath"}]}`` → ({file: captions}, {file: split} or None)."""
    if not isinstance(data, dict) or "images" not in data:
        raise ValueError(f"{path} is JSON but has no 'images' list; expected COCO captions "
                         f"(keys 'images', 'annotations') or a Karpathy split file (images[*].sentences). "
                         f"{CAPTIONS_HELP}")
    imgs = data["images"]
    if imgs and "sentences" in imgs[0]:  # Karpathy
        caps, split = {}, {}
        for im in imgs:
            name = str(Path(im.get("filepath", "")) / im["filename"]) if im.get("filepath") else im["filename"]
            caps[name] = [s.get("raw", " ".join(s.get("tokens", []))).strip() for s in im["sentences"]]
            split[name] = {"restval": "train"}.get(im.get("split", "train"), im.get("split", "train"))
        return caps, split
    if "annotations" not in data:
        raise ValueError(f"{path} has 'images' but no 'annotations' (COCO captions) and no 'sentences' "
                         f"(Karpathy split). {CAPTIONS_HELP}")
    by_id = {im["id"]: im["file_name"] for im in imgs}
    caps = defaultdict(list)
    for a in data["annotations"]:
        if a["image_id"] not in by_id:
            raise ValueError(f"{path}: annotation {a.get('id')} refers to image_id {a['image_id']}, which is not "
                             f"in 'images'. The file is inconsistent: re-download it.")
        caps[by_id[a["image_id"]]].append(a["caption"].strip())
    return dict(caps), None


def _read_captions(path: Path) -> tuple[dict[str, list[str]], dict[str, str] | None]:
    """``({image name: captions}, {image name: split} or None)`` of a Flickr8k ``captions.txt``,
    a COCO ``captions_*.json`` or a Karpathy ``dataset_*.json``."""
    split_of = None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}). Re-download it. {CAPTIONS_HELP}") from err
        caps, split_of = _read_coco_json(data, path)
    else:
        caps = _read_flickr_txt(path)
    if not caps:
        raise ValueError(f"{path} holds no captions. {CAPTIONS_HELP}")
    return caps, split_of


def _caption_images(path: Path, images_dir: str | os.PathLike | None) -> Path:
    """The folder holding the images of the captions file ``path``: ``images_dir`` if given, else
    ``Images/``, ``images/``, ``Flicker8k_Dataset/`` or ``Flickr8k_Dataset/`` beside it, else its own folder."""
    if images_dir is not None:
        img_root = Path(images_dir)
    else:
        cands = [path.parent / d for d in ("Images", "images", "Flicker8k_Dataset", "Flickr8k_Dataset")]
        img_root = next((c for c in cands if c.is_dir()), path.parent)
    if not img_root.is_dir():
        raise _missing(img_root, "image folder", "a folder with the caption file's images", CAPTIONS_HELP)
    return img_root


def _pair_captions(caps: dict[str, list[str]], split_of: dict[str, str] | None, path: Path,
                   img_root: Path) -> tuple[list[Path], list[list[str]], list[str]]:
    """``(image files, their captions, their splits)`` for the images found in ``img_root`` (by
    name, then by file name); the others are counted and skipped."""
    def locate(name: str) -> Path | None:
        for cand in (img_root / name, img_root / Path(name).name):
            if cand.is_file():
                return cand
        return None

    files, texts, splits, missing = [], [], [], []
    for name, cs in caps.items():
        f = locate(name)
        if f is None:
            missing.append(name)
            continue
        files.append(f)
        texts.append(cs)
        if split_of is not None:
            splits.append(split_of.get(name, split_of.get(Path(name).name, "train")))
    if not files:
        raise FileNotFoundError(f"none of the {len(caps)} images named in {path} is in {img_root} "
                                f"(e.g. {missing[0]}). Pass images_dir= the folder holding them. {CAPTIONS_HELP}")
    if missing:
        print(f"load_captions: {len(missing)} of {len(caps)} images named in {path.name} are not in {img_root} "
              f"(e.g. {', '.join(missing[:3])}); their captions are skipped.")
    return files, texts, splits


def load_captions(captions_file: str | os.PathLike | None = None, images_dir: str | os.PathLike | None = None,
                  image_size: int | None = 224, transform: Callable | None = None,
                  split_file: str | os.PathLike | None = None) -> dict[str, CaptionDataset] | CaptionDataset:
    """Load an image–caption data set.

    ``captions_file``: Flickr8k ``captions.txt`` (``image,caption``; several lines per image),
    a COCO ``captions_*.json``, or a Karpathy split JSON (``dataset_flickr8k.json`` /
    ``dataset_coco.json``); default ``data/flickr8k/captions.txt``. Images come from
    ``images_dir`` (default: ``Images/``, ``images/`` or the folder next to the file).
    ``split_file``: optional Karpathy JSON giving the splits of a Flickr8k/COCO file.
    Returns ``{"train", "val", "test"}`` datasets with a Karpathy split, else one
    :class:`CaptionDataset`. Captions whose image file is missing are dropped and counted;
    if none is found the error names the folder searched.
    """
    path = Path(captions_file) if captions_file is not None else data_dir() / "flickr8k" / "captions.txt"
    if not path.is_file():
        raise _missing(path, "captions file", "Flickr8k captions.txt, COCO captions_*.json or a Karpathy "
                       "dataset_*.json", CAPTIONS_HELP)
    caps, split_of = _read_captions(path)
    if split_file is not None:
        sdata = json.loads(Path(split_file).read_text(encoding="utf-8"))
        _, split_of = _read_coco_json(sdata, Path(split_file))
        split_of = {Path(k).name: v for k, v in split_of.items()}
    files, texts, splits = _pair_captions(caps, split_of, path, _caption_images(path, images_dir))
    if split_of is None:
        return CaptionDataset(files, texts, image_size, transform)
    out = {}
    for s in ("train", "val", "test"):
        idx = [i for i, sp in enumerate(splits) if sp == s]
        out[s] = CaptionDataset([files[i] for i in idx], [texts[i] for i in idx], image_size, transform)
    return out
