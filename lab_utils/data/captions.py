"""Captions for the synthetic faces: templates filled with synonyms of each face's attributes.

Like a Flickr8k caption, each sentence combines several things one can *see* in the
32 px image: the expression, the skin tone, the hair colour, glasses, the face's shape and
the background colour, e.g. "a smiling tanned person with red hair and glasses on a dark
blue background". Several differently worded captions per image, deterministic per
``(seed, index)``, so that CLIP training, Recall@K (one caption picks out one face among
hundreds) and zero-shot FER ("a photo of a happy face") all work on the synthetic world.

Only attributes the renderer draws visibly are named. Not named: the ±2 px position jitter
and the ±8 % scale jitter (invisible at 32 px except in :func:`position_words`, kept for
the larger renders), the clutter shapes (random, often hidden by the face) and the
thermal map.
"""
from __future__ import annotations

import colorsys
import re
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .synthetic import EMOTIONS, HAIR_COLORS, SKIN_TONES, SynthFER, face_shape_name, sample_attributes

EXPRESSION_WORDS: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "furious", "annoyed", "cross", "mad"),
    "disgust": ("disgusted", "repulsed", "grossed-out", "revolted"),
    "fear": ("scared", "frightened", "afraid", "fearful", "terrified"),
    "happy": ("happy", "smiling", "cheerful", "joyful", "grinning"),
    "sad": ("sad", "unhappy", "gloomy", "downcast", "sorrowful"),
    "surprise": ("surprised", "astonished", "amazed", "startled", "shocked"),
    "neutral": ("neutral", "calm", "expressionless", "relaxed", "composed"),
}
"""Adjectives per class (the first one is the class's plain word, used in prompts)."""

EXPRESSION_NOUNS: dict[str, tuple[str, ...]] = {
    "angry": ("an angry expression", "a scowl", "a furious look"),
    "disgust": ("a disgusted expression", "a wrinkled nose", "a look of disgust"),
    "fear": ("a fearful expression", "a frightened look", "wide, scared eyes"),
    "happy": ("a big smile", "a happy expression", "a cheerful grin"),
    "sad": ("a sad expression", "a frown", "a gloomy look"),
    "surprise": ("a surprised expression", "an open mouth", "an astonished look"),
    "neutral": ("a neutral expression", "a blank look", "a calm expression"),
}
"""Noun phrases per class (every caption names the expression with a word of one of these two tables)."""

SUBJECT_NOUNS = ("face", "person", "cartoon face", "character", "figure")

HAIR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark"), "brown": ("brown", "brunette"), "blond": ("blond", "fair"),
    "red": ("red", "ginger"), "grey": ("grey", "silver"),
}

_SKIN_WORDS = {"pale": "pale-skinned", "light": "light-skinned", "olive": "olive-skinned",
               "tan": "tanned", "brown": "brown-skinned", "dark": "dark-skinned"}
_GLASSES = ("wearing glasses", "with glasses", "in spectacles")
_BACKDROP = ("background", "backdrop", "wall")

_ARTICLE = re.compile(r"\b([aA]) ([aeiouAEIOU])")

_POS_V = {-1: "top", 0: "", 1: "bottom"}
_POS_H = {-1: "left", 0: "", 1: "right"}

# Every template names the expression (most of them twice: an adjective and a noun phrase,
# because it is the hardest thing to see), the hair and the background. ``_FULL`` ones also
# name the skin tone, the face shape and the glasses (when worn); an image's first caption
# always uses one of them, so it is the most specific.
_FULL = (
    "a {adj} {skin} {noun} with {expr}, {hair} hair and a {shape} face{glasses}, {bg}",
    "{Bg}: a {adj} {skin} {noun} with {hair} hair, a {shape} face and {expr}{glasses}",
    "a {shape}-faced, {skin} {noun} with {hair} hair and {expr}, looking {adj}{glasses} {bg}",
    "close-up of a {adj} {skin} {noun} with {expr}{glasses}, {hair} hair, {shape} face, {bg}",
)
_PARTIAL = (
    "a {adj} {noun} with {hair} hair showing {expr}{glasses} {bg}",
    "a {adj} {skin} {noun} with {hair} hair {bg}",
    "{expr} on a {adj}, {shape} {skin} face{glasses}, {hair} hair, {bg}",
)


def position_words(cx: float, cy: float, threshold: float = 0.07) -> str:
    """Where the face sits in the frame: 'in the top left', 'in the centre', 'on the right', …"""
    h = -1 if cx < -threshold else (1 if cx > threshold else 0)
    v = -1 if cy < -threshold else (1 if cy > threshold else 0)
    if h == 0 and v == 0:
        return "in the centre"
    if h == 0:
        return f"at the {_POS_V[v]}"
    if v == 0:
        return f"on the {_POS_H[h]}"
    return f"in the {_POS_V[v]} {_POS_H[h]}"


def skin_words(skin_index: int) -> str:
    """'pale-skinned', 'tanned', … for a :data:`SKIN_TONES` index."""
    return _SKIN_WORDS[list(SKIN_TONES)[int(skin_index)]]


def color_name(rgb) -> str:
    """A plain colour name for an RGB triple in [0, 1]: 'dark blue', 'grey', 'light pink', …

    Hue decides the colour (8 hues), saturation separates greys, and brightness adds
    'dark' / 'light'; this is how people name the background of a photo."""
    r, g, b = (float(x) for x in rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if s < 0.2:
        return "dark grey" if v < 0.45 else ("light grey" if v > 0.75 else "grey")
    deg = h * 360.0
    hue = ("red" if deg < 15 or deg >= 340 else "orange" if deg < 42 else "yellow" if deg < 70 else
           "green" if deg < 160 else "teal" if deg < 195 else "blue" if deg < 255 else
           "purple" if deg < 290 else "pink")
    if v < 0.5:
        return f"dark {hue}"
    if v > 0.75 and s < 0.45:
        return f"light {hue}"
    return hue


def make_captions(attrs: dict[str, np.ndarray], seed: int = 0, per_image: int = 5) -> list[list[str]]:
    """``per_image`` different captions for each item of ``attrs`` (from
    :func:`~lab_utils.data.sample_attributes`); deterministic per ``(seed, subject, index)``.

    Caption 0 of every image is the most specific one (expression, skin tone, hair colour,
    face shape, glasses when worn, background colour); the others use other templates and
    synonyms and may leave out the skin tone or the face shape, as people do."""
    out = []
    hair_names = list(HAIR_COLORS)
    n = len(attrs["label"])
    for b in range(n):
        label = EMOTIONS[int(attrs["label"][b])]
        subject = int(attrs["subject"][b])
        # the item's caption stream depends on its identity, never on the batch it was drawn in
        r = np.random.Generator(np.random.PCG64([seed, subject, 3, int(attrs["noise_seed"][b] % (2**31))]))
        shape = face_shape_name(float(attrs["face_h"][b] / attrs["face_w"][b]))
        glasses = bool(attrs["glasses"][b])
        hair_words = HAIR_WORDS[hair_names[int(attrs["hair"][b])]]
        bg_colour = color_name(attrs["bg"][b])
        skin = skin_words(attrs["skin"][b])
        first = _FULL[r.integers(len(_FULL))]
        rest = [t for t in _FULL + _PARTIAL if t != first]
        order = [first] + [rest[k] for k in r.permutation(len(rest))]
        caps: list[str] = []
        for j in range(per_image):
            tpl = order[j % len(order)]
            adjs = EXPRESSION_WORDS[label]
            bg = f"on a {bg_colour} {_BACKDROP[r.integers(len(_BACKDROP))]}"
            text = tpl.format(adj=adjs[r.integers(len(adjs))], noun=SUBJECT_NOUNS[r.integers(len(SUBJECT_NOUNS))],
                              skin=skin, hair=hair_words[r.integers(len(hair_words))], shape=shape,
                              expr=EXPRESSION_NOUNS[label][r.integers(3)],
                              glasses=(" " + _GLASSES[r.integers(3)]) if glasses else "",
                              bg=bg, Bg=bg[0].upper() + bg[1:])
            text = _ARTICLE.sub(lambda m: m.group(1) + "n " + m.group(2), text)
            if text in caps:  # keep the captions of one image different
                text = f"{text}, {len(caps) + 1}" if j >= len(order) else f"{text} (close-up)"
            caps.append(text)
        out.append(caps)
    return out


class SynthFaceCaptions(Dataset):
    """Synthetic faces with several captions each (like Flickr8k's five per image).

    Item ``i`` is ``{"image": FloatTensor[3, S, S] in [0, 1], "captions": list[str]
    (``captions_per_image`` ≥ 2 varied sentences), "label": int}``; the face is the same
    as ``SynthFER(..., seed)[i]["rgb"]``. Captions come from the face's attributes
    (expression, position in the frame, glasses, face shape, skin tone, hair) with
    templates and synonyms (:func:`~lab_utils.data.make_captions`).
    ``.captions`` holds every item's list; ``.labels`` / ``.subjects`` never render.
    """

    def __init__(self, num_samples: int, image_size: int = 64, seed: int = 0,
                 captions_per_image: int = 5, transform: Callable | None = None):
        if not isinstance(captions_per_image, int) or captions_per_image < 2:
            raise ValueError(f"captions_per_image must be an int ≥ 2, got {captions_per_image!r}")
        self._faces = SynthFER(num_samples, image_size, seed)
        self.num_samples, self.image_size, self.seed = self._faces.num_samples, image_size, seed
        self.captions_per_image = captions_per_image
        self.transform = transform
        self.classes = EMOTIONS
        self.labels, self.subjects = self._faces.labels, self._faces.subjects
        attrs = sample_attributes(np.arange(self.num_samples), seed)
        self.captions: list[list[str]] = make_captions(attrs, seed, captions_per_image)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict:
        item = self._faces[i]
        img = item["rgb"]
        if self.transform is not None:
            img = self.transform(img)
        return {"image": img, "captions": list(self.captions[i % self.num_samples]), "label": item["label"]}

    def tensors(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """``image`` (N, 3, S, S) floats in [0, 1] (bytes 0–255 with ``dtype=torch.uint8``)
        and ``label`` (N,) int64 (captions: ``.captions``)."""
        t = self._faces.tensors(dtype)
        return {"image": t["rgb"], "label": t["label"]}

    def __repr__(self) -> str:
        return (f"SynthFaceCaptions(num_samples={self.num_samples}, image_size={self.image_size}, "
                f"seed={self.seed}, captions_per_image={self.captions_per_image})")
