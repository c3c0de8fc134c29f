"""Captions for the synthetic faces: templates filled with synonyms of each face's attributes.

"a smiling face in the top left", "a surprised person wearing glasses", … Several captions
per image, deterministic per ``(seed, index)``, so CLIP training, Recall@K and zero-shot
FER ("a photo of a happy face") all work on the synthetic world.
"""
from __future__ import annotations

import numpy as np

from .synthetic import EMOTIONS, HAIR_COLORS, SKIN_TONES, face_shape_name

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

SUBJECT_NOUNS = ("face", "person", "cartoon face", "character", "figure")

import re

_ARTICLE = re.compile(r"\b([aA]) ([aeiouAEIOU])")

_POS_V = {-1: "top", 0: "", 1: "bottom"}
_POS_H = {-1: "left", 0: "", 1: "right"}

_TEMPLATES = (
    "a {adj} {noun} {where}",
    "a {noun} looking {adj}{glasses}",
    "a person with a {shape} face and {expr}",
    "a photo of a {adj} {noun}",
    "{where_cap}, a {skin} {noun} {with_glasses_or_hair} looks {adj}",
    "a {adj} {noun} with {hair} hair{glasses}",
    "close-up of a {adj} {shape} face {where}",
    "a {skin} {noun} showing {expr}",
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
    name = list(SKIN_TONES)[int(skin_index)]
    return {"pale": "pale-skinned", "light": "light-skinned", "olive": "olive-skinned",
            "tan": "tanned", "brown": "brown-skinned", "dark": "dark-skinned"}[name]


def make_captions(attrs: dict[str, np.ndarray], seed: int = 0, per_image: int = 5) -> list[list[str]]:
    """``per_image`` different captions for each item of ``attrs`` (from
    :func:`~lab_utils.data.sample_attributes`); deterministic per ``(seed, subject, index)``."""
    out = []
    hair_names = list(HAIR_COLORS)
    n = len(attrs["label"])
    for b in range(n):
        label = EMOTIONS[int(attrs["label"][b])]
        subject = int(attrs["subject"][b])
        # the item's caption stream depends on its identity, never on the batch it was drawn in
        r = np.random.Generator(np.random.PCG64([seed, subject, 3, int(attrs["noise_seed"][b] % (2**31))]))
        where = position_words(float(attrs["cx"][b]), float(attrs["cy"][b]))
        shape = face_shape_name(float(attrs["face_h"][b] / attrs["face_w"][b]))
        glasses = bool(attrs["glasses"][b])
        hair = hair_names[int(attrs["hair"][b])]
        order = r.permutation(len(_TEMPLATES))
        caps: list[str] = []
        for j in range(per_image):
            tpl = _TEMPLATES[order[j % len(_TEMPLATES)]]
            adjs = EXPRESSION_WORDS[label]
            adj = adjs[r.integers(len(adjs))]
            noun = SUBJECT_NOUNS[r.integers(len(SUBJECT_NOUNS))]
            gl = (" " + ("wearing glasses", "with glasses", "in spectacles")[r.integers(3)]) if glasses else ""
            with_gh = ("wearing glasses" if glasses else f"with {hair} hair")
            text = tpl.format(adj=adj, noun=noun, where=where, where_cap=where[0].upper() + where[1:],
                              glasses=gl, shape=shape, expr=EXPRESSION_NOUNS[label][r.integers(3)],
                              skin=skin_words(attrs["skin"][b]), with_glasses_or_hair=with_gh, hair=hair)
            text = _ARTICLE.sub(lambda m: m.group(1) + "n " + m.group(2), text)
            if text in caps:  # keep the captions of one image different
                text = f"{text}, {where}" if where not in text else f"{text} ({shape} face)"
            caps.append(text)
        out.append(caps)
    return out
