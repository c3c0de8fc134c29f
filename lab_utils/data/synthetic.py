"""The synthetic face world: cartoon faces (RGB), paired thermal maps and captions.

Every notebook's quick profile trains on these faces, so they are built to make each
lesson's point visible:

* 7 expressions in FER2013's label order (:data:`EMOTIONS`), drawn as facial actions
  (brows, eyes, nose wrinkle, mouth) with per-item intensity and noise;
* per-subject identity (face shape, skin tone, hair, baseline temperature, physiology),
  pose / scale / position jitter, glasses and background clutter as distractors;
* a paired **thermal** map (°C) whose regional temperatures follow published cues: the
  nose tip cools with arousal (fear, surprise, disgust), forehead and periorbital skin
  warm with anger / stress, the cheeks warm with happiness;
* the two modalities confuse *different* class pairs. RGB draws fear vs surprise and
  anger vs disgust at small amplitude; thermal gives disgust and surprise the same
  signature (a cold nose) and sad and neutral none at all. Fusion can fix both.

Everything is deterministic per ``(seed, index)``: item ``i`` has the same pixels however
many items are drawn and in whichever order, on every machine (NumPy's PCG64 streams,
float32 arithmetic, 8-bit storage). Rendering is vectorised over a batch of items.

The per-class parameters (:data:`RGB_ACTIONS`, :data:`THERMAL_CUES`) are the design table
in ``data/README.md``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's 7 classes in FER2013's label order (label ``k`` is ``EMOTIONS[k]``)."""

NUM_CLASSES = len(EMOTIONS)

THERMAL_RANGE_C: tuple[float, float] = (20.0, 40.0)
"""Thermal tensors hold ``(T - 20 °C) / 20 °C``: 0 is 20 °C, 1 is 40 °C."""

ITEMS_PER_SUBJECT = 14
"""Items ``14 s … 14 s + 13`` show subject ``s``: each expression twice (balanced classes)."""

# --------------------------------------------------------------------------------------
# Design table. Units: face-local coordinates (the face is about 2 units wide, y down).
# --------------------------------------------------------------------------------------
RGB_ACTION_KEYS = ("brow_raise", "brow_tilt", "brow_arch", "brow_gap", "eye_open",
                   "mouth_curve", "mouth_open", "mouth_width", "nose_wrinkle", "lip_raise")
"""The face actions, in the order of each face's ``rgb_params`` columns (``sample_attributes``)."""

RGB_ACTIONS: dict[str, dict[str, float]] = {
    # brow_raise: up (+) / down (-); brow_tilt: inner ends up (+, sad/fear) or down (-, anger);
    # brow_arch: arched (surprise); brow_gap: drawn together (+); eye_open: 1 = relaxed;
    # mouth_curve: smile (+) / frown (-); mouth_open: jaw drop; mouth_width: 1 = relaxed
    # (stretched > 1, pressed < 1); nose_wrinkle and lip_raise: disgust's actions (0..1).
    "angry":    dict(brow_raise=-0.08, brow_tilt=-0.30, brow_arch=0.00, brow_gap=0.06, eye_open=0.75,
                     mouth_curve=-0.05, mouth_open=0.00, mouth_width=0.85, nose_wrinkle=0.15, lip_raise=0.0),
    "disgust":  dict(brow_raise=-0.06, brow_tilt=-0.27, brow_arch=0.00, brow_gap=0.05, eye_open=0.72,
                     mouth_curve=-0.06, mouth_open=0.03, mouth_width=0.90, nose_wrinkle=0.50, lip_raise=0.40),
    "fear":     dict(brow_raise=0.14, brow_tilt=0.06, brow_arch=0.02, brow_gap=0.04, eye_open=1.50,
                     mouth_curve=-0.03, mouth_open=0.20, mouth_width=1.10, nose_wrinkle=0.0, lip_raise=0.0),
    "happy":    dict(brow_raise=0.02, brow_tilt=0.00, brow_arch=0.03, brow_gap=0.00, eye_open=0.70,
                     mouth_curve=0.36, mouth_open=0.10, mouth_width=1.30, nose_wrinkle=0.0, lip_raise=0.0),
    "sad":      dict(brow_raise=0.02, brow_tilt=0.30, brow_arch=0.00, brow_gap=0.02, eye_open=0.85,
                     mouth_curve=-0.36, mouth_open=0.00, mouth_width=0.95, nose_wrinkle=0.0, lip_raise=0.0),
    "surprise": dict(brow_raise=0.16, brow_tilt=0.00, brow_arch=0.06, brow_gap=0.00, eye_open=1.55,
                     mouth_curve=0.00, mouth_open=0.30, mouth_width=0.95, nose_wrinkle=0.0, lip_raise=0.0),
    "neutral":  dict(brow_raise=0.00, brow_tilt=0.00, brow_arch=0.00, brow_gap=0.00, eye_open=1.00,
                     mouth_curve=0.00, mouth_open=0.00, mouth_width=1.00, nose_wrinkle=0.0, lip_raise=0.0),
}
"""Facial actions per class (face-local units; neutral is the rest pose)."""

_THERMAL_KEYS = ("forehead", "periorbital", "nose", "cheeks")

THERMAL_CUES: dict[str, dict[str, float]] = {
    # Temperature change (°C) from the subject's own baseline, per region.
    "angry":    dict(forehead=+1.8, periorbital=+1.5, nose=+0.0, cheeks=+0.3),
    "disgust":  dict(forehead=+0.0, periorbital=+0.0, nose=-2.0, cheeks=+0.0),
    "fear":     dict(forehead=+1.0, periorbital=+1.5, nose=-2.0, cheeks=+0.0),
    "happy":    dict(forehead=+0.0, periorbital=+0.2, nose=+0.3, cheeks=+1.8),
    "sad":      dict(forehead=+0.0, periorbital=+0.0, nose=+0.0, cheeks=+0.0),
    "surprise": dict(forehead=+0.0, periorbital=+0.0, nose=-2.0, cheeks=+0.0),
    "neutral":  dict(forehead=+0.0, periorbital=+0.0, nose=+0.0, cheeks=+0.0),
}
"""Regional temperature change (°C) per class, added to each subject's baseline."""

_RGB_TABLE = np.array([[RGB_ACTIONS[e][k] for k in RGB_ACTION_KEYS] for e in EMOTIONS], np.float32)
_THERMAL_TABLE = np.array([[THERMAL_CUES[e][k] for k in _THERMAL_KEYS] for e in EMOTIONS], np.float32)
_NEUTRAL_RGB = _RGB_TABLE[EMOTIONS.index("neutral")]

SKIN_TONES = {  # name -> RGB in [0, 1]
    "pale": (0.96, 0.84, 0.74), "light": (0.92, 0.74, 0.60), "olive": (0.80, 0.62, 0.45),
    "tan": (0.70, 0.50, 0.34), "brown": (0.52, 0.35, 0.23), "dark": (0.36, 0.24, 0.16),
}
HAIR_COLORS = {
    "black": (0.08, 0.07, 0.07), "brown": (0.35, 0.22, 0.12), "blond": (0.85, 0.72, 0.40),
    "red": (0.62, 0.25, 0.10), "grey": (0.62, 0.62, 0.62),
}
_SKIN = np.array(list(SKIN_TONES.values()), np.float32)
_HAIR = np.array(list(HAIR_COLORS.values()), np.float32)


def face_shape_name(aspect: float) -> str:
    """Face shape word from the face's height / width ratio: round, oval or long."""
    return "round" if aspect < 1.15 else ("oval" if aspect < 1.30 else "long")


# --------------------------------------------------------------------------------------
# Attributes: one PCG64 stream per subject and per item, so item i never depends on others.
# --------------------------------------------------------------------------------------
def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(list(key)))


def sample_attributes(indices: Sequence[int] | np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Attributes of items ``indices`` (each an array of length ``B = len(indices)``).

    Keys: ``label``, ``subject``, ``skin``/``hair`` (palette index), ``face_w``/``face_h``,
    ``glasses`` (bool), ``cx``/``cy`` (face centre in [-1, 1] frame units, y down),
    ``scale``, ``angle`` (radians), ``intensity``, ``rgb_params`` (B, 10), ``thermal_cues``
    (B, 4, °C), ``base_temp`` (°C), ``ambient`` (°C) and the nuisance parameters the
    renderer uses. Deterministic per ``(seed, index)``.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and idx.min() < 0:
        raise IndexError(f"item indices must be ≥ 0, got {int(idx.min())}")
    subjects = idx // ITEMS_PER_SUBJECT
    out: dict[str, list] = {}
    subj_cache: dict[int, tuple] = {}
    for i, s in zip(idx.tolist(), subjects.tolist()):
        if s not in subj_cache:
            r = _rng(seed, s, 1)
            order = r.permutation(ITEMS_PER_SUBJECT) % NUM_CLASSES
            subj_cache[s] = (order, r.integers(len(_SKIN)), r.integers(len(_HAIR)),
                             r.uniform(0.78, 0.92), r.uniform(0.95, 1.22),  # face width, height
                             r.uniform(0.30, 0.38),  # eye spacing
                             r.uniform(33.6, 35.4),  # baseline skin temperature, °C
                             r.normal(0.0, 0.2, 4).astype(np.float32),  # own regional physiology
                             r.normal(0.0, 0.012, len(RGB_ACTION_KEYS)).astype(np.float32),  # own resting face
                             r.random() < 0.3)  # wears glasses often
        (order, skin, hair, fw, fh, ex, tb, phys, rest, glasses_often) = subj_cache[s]
        r = _rng(seed, s, 2, i)
        U = r.random(40)  # one uniform and one normal draw per item: fast, and order-stable
        N = r.standard_normal(40).astype(np.float32)
        label = int(order[i % ITEMS_PER_SUBJECT])
        intensity = 0.7 + 0.5 * U[0]
        rgb = _NEUTRAL_RGB + intensity * (_RGB_TABLE[label] - _NEUTRAL_RGB) + rest + 0.018 * N[0:10]
        therm = (0.7 + 0.5 * U[1]) * _THERMAL_TABLE[label] + phys + 0.15 * N[10:14]
        row = dict(
            label=label, subject=s, skin=skin, hair=hair, face_w=fw, face_h=fh, eye_x=ex,
            glasses=bool(U[2] < (0.7 if glasses_often else 0.1)),
            cx=-0.14 + 0.28 * U[3], cy=-0.12 + 0.24 * U[4], scale=0.68 + 0.12 * U[5],
            angle=0.09 * N[14], intensity=intensity, rgb_params=rgb, thermal_cues=therm,
            base_temp=tb + 0.25 * N[15], ambient=21.0 + 5.0 * U[6],
            skin_jitter=0.03 * N[16:19], bg=0.15 + 0.75 * U[7:10], bg_grad=0.15 * N[19:22],
            clutter_xy=(-1.0 + 2.0 * U[10:16]).reshape(3, 2), clutter_r=0.08 + 0.22 * U[16:19],
            clutter_col=U[19:28].reshape(3, 3), clutter_temp=19.0 + 12.0 * U[28:31],
            noise_seed=int(U[31] * 2**52), thermal_offset=0.3 * N[22],
        )
        for k, v in row.items():
            out.setdefault(k, []).append(v)
    res = {k: np.asarray(v) for k, v in out.items()}
    for k, v in res.items():
        if v.dtype == np.float64:
            res[k] = v.astype(np.float32)
    return res


# --------------------------------------------------------------------------------------
# Rendering (vectorised over the batch; arrays are (B, H, W) float32).
# --------------------------------------------------------------------------------------
def _soft(sd: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Coverage of a shape from its signed distance ``sd`` (< 0 inside), anti-aliased."""
    return np.clip(0.5 - sd / px, 0.0, 1.0)


def _ellipse_sd(x, y, a, b):
    return (np.sqrt((x / a) ** 2 + (y / b) ** 2) - 1.0) * np.minimum(a, b)


def _paint(img: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """In place: ``img = (1 - alpha) img + alpha color``; img (B,3,H,W), alpha (B,H,W), color (B,3)."""
    a = alpha[:, None]
    img *= 1.0 - a
    img += a * color[:, :, None, None]


class _Frame:
    """A batch's pixel grid in two coordinate systems: the image's (``u``, ``v`` in [-1, 1]) and
    each face's own (``x``, ``y``: position, rotation and scale undone; ``px`` = one pixel)."""

    def __init__(self, attrs: dict[str, np.ndarray], S: int):
        self.attrs, self.S, self.B = attrs, S, len(attrs["label"])
        g = (np.arange(S, dtype=np.float32) + 0.5) / S * 2.0 - 1.0
        self.u, self.v = g[None, None, :], g[None, :, None]  # (1,1,S) and (1,S,1)
        self.cos, self.sin = np.cos(self.col("angle")), np.sin(self.col("angle"))
        du, dv = self.u - self.col("cx"), self.v - self.col("cy")
        self.sc = self.col("scale")
        self.x = (self.cos * du + self.sin * dv) / self.sc
        self.y = (-self.sin * du + self.cos * dv) / self.sc
        self.px = (2.0 / S) / self.sc  # one pixel in local units, (B,1,1)
        self.fw, self.fh, self.ex = self.col("face_w"), self.col("face_h"), self.col("eye_x")
        self.P = {k: attrs["rgb_params"][:, j].astype(np.float32)[:, None, None] for j, k in enumerate(RGB_ACTION_KEYS)}

    def col(self, key: str) -> np.ndarray:
        """A per-item attribute as a (B, 1, 1) float32 column."""
        return self.attrs[key].astype(np.float32)[:, None, None]

    def gauss(self, lx, ly, sigma) -> np.ndarray:
        """Gaussian bump centred at face-local (lx, ly), (B, S, S); separable in image coordinates
        because rotation keeps distances (cost: two (B,1,S) exps and one product)."""
        f32 = np.float32
        lx = np.broadcast_to(np.asarray(lx, f32), (self.B, 1, 1))
        ly = np.broadcast_to(np.asarray(ly, f32), (self.B, 1, 1))
        fu = self.col("cx") + self.sc * (self.cos * lx - self.sin * ly)
        fv = self.col("cy") + self.sc * (self.sin * lx + self.cos * ly)
        k = 1.0 / (2.0 * (sigma * self.sc) ** 2)
        return np.exp(-k * (self.u - fu) ** 2) * np.exp(-k * (self.v - fv) ** 2)


def _background(f: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """Colour, gradient and clutter: the RGB (B, 3, S, S) and thermal (B, S, S) canvases."""
    f32, a_ = np.float32, f.attrs
    rgb = np.empty((f.B, 3, f.S, f.S), f32)
    bg, grad = a_["bg"].astype(f32)[:, :, None, None], a_["bg_grad"].astype(f32)[:, :, None, None]
    rgb[:] = bg + grad * (f.u + f.v)[None] * 0.5
    therm = np.empty((f.B, f.S, f.S), f32)
    therm[:] = f.col("ambient") + 0.8 * f.v
    for k in range(a_["clutter_r"].shape[1]):
        cxk = a_["clutter_xy"][:, k, 0].astype(f32)[:, None, None]
        cyk = a_["clutter_xy"][:, k, 1].astype(f32)[:, None, None]
        rk = a_["clutter_r"][:, k].astype(f32)[:, None, None]
        if k % 2 == 0:
            sd = np.sqrt((f.u - cxk) ** 2 + (f.v - cyk) ** 2) - rk
        else:
            sd = np.maximum(np.abs(f.u - cxk), np.abs(f.v - cyk)) - rk
        a = _soft(sd, np.float32(2.0 / f.S))
        _paint(rgb, a, a_["clutter_col"][:, k].astype(f32))
        therm += a * (a_["clutter_temp"][:, k].astype(f32)[:, None, None] - therm)
    return rgb, therm


def _thermal_face(f: _Frame) -> np.ndarray:
    """The face's temperature (B, S, S): baseline, falloff towards the edge, regional cues."""
    T = f.attrs["thermal_cues"].astype(np.float32)
    fw, fh, ex = f.fw, f.fh, f.ex
    face_t = f.col("base_temp") - 1.6 * ((f.x / fw) ** 2 + (f.y / fh) ** 2)
    face_t += T[:, 0, None, None] * f.gauss(0.0, -0.62 * fh, 0.30)
    peri = f.gauss(-ex, -0.12, 0.13) + f.gauss(ex, -0.12, 0.13)
    face_t += (T[:, 1, None, None] + 0.4) * peri  # inner eye corners are warm anyway
    face_t += T[:, 2, None, None] * f.gauss(0.0, 0.22, 0.13)
    face_t += T[:, 3, None, None] * (f.gauss(-0.5 * fw, 0.28, 0.2) + f.gauss(0.5 * fw, 0.28, 0.2))
    face_t -= 0.6 * f.gauss(0.0, 0.55, 0.14)  # lips a little cooler
    return face_t


def _head(f: _Frame, rgb: np.ndarray, therm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hair and face, in both modalities; returns the skin colour (B, 3) and the hair's (B, 3)."""
    f32, x, y, px, fw, fh = np.float32, f.x, f.y, f.px, f.fw, f.fh
    skin = np.clip(_SKIN[f.attrs["skin"]] + f.attrs["skin_jitter"].astype(f32), 0, 1)
    hair = _HAIR[f.attrs["hair"]]
    hair_a = _soft(_ellipse_sd(x, y + 0.12, fw * 1.1, fh * 1.02), px) * np.clip((-0.35 - y) / (3 * px) + 0.5, 0, 1)
    face_sd = _ellipse_sd(x, y, fw, fh)
    _paint(rgb, np.maximum(hair_a, 0), hair)
    _paint(rgb, _soft(face_sd, px) * (1 - hair_a * (y < -0.5 * fh)), skin)
    face_t = _thermal_face(f)
    hair_t = 28.5
    therm_face_a = np.clip(0.5 - face_sd / (2.5 * px), 0, 1)  # thermal optics are blurrier
    therm += np.clip(hair_a, 0, 1) * (hair_t - therm)
    therm += therm_face_a * (face_t - therm) * (1 - 0.8 * hair_a * (y < -0.5 * fh))
    return skin, hair


def _eyes_and_brows(f: _Frame, rgb: np.ndarray, hair: np.ndarray, dark: np.ndarray) -> None:
    """Both eyes and brows at once: the face is mirror-symmetric, so x is folded to |x|."""
    xa, y, px, ex, P = np.abs(f.x), f.y, f.px, f.ex, f.P
    white = np.zeros((f.B, 3), np.float32) + 0.97
    sclera = _soft(_ellipse_sd(xa - ex, y + 0.12, 0.12, 0.075 * P["eye_open"]), px)
    _paint(rgb, sclera, white)
    pupil = _soft(np.sqrt((xa - ex) ** 2 + (y + 0.12) ** 2) - 0.055, px) * sclera
    _paint(rgb, pupil, dark)
    # brows: y(t) = base - raise + tilt*t - arch*(1 - t^2), t from inner (-1) to outer (+1)
    L = 0.19
    t = (xa - (ex - P["brow_gap"])) / L
    yb = -0.31 - P["brow_raise"] + P["brow_tilt"] * t - P["brow_arch"] * (1 - t ** 2)
    sd = np.maximum(np.abs(y - yb) - 0.045, (np.abs(t) - 1.0) * L)
    _paint(rgb, _soft(sd, px), hair * 0.7)


def _nose_and_mouth(f: _Frame, rgb: np.ndarray, skin: np.ndarray, dark: np.ndarray) -> None:
    """The nose with disgust's wrinkle (two short lines at y = -0.02 and 0.04), and the mouth:
    its centre line smiles or frowns, opening drops the jaw, lip_raise lifts the upper lip."""
    f32, xa, y, px, P = np.float32, np.abs(f.x), f.y, f.px, f.P
    shade = (skin * 0.72).astype(f32)
    nose = _soft(np.maximum(xa - 0.018, np.abs(y - 0.12) - 0.12), px)
    _paint(rgb, nose * 0.6, shade)
    wr = _soft(np.maximum(np.abs(np.abs(y - 0.01) - 0.03) - 0.012, xa - 0.09), px)
    _paint(rgb, wr * np.clip(P["nose_wrinkle"], 0, 1), shade * 0.8)
    W = 0.26 * P["mouth_width"]
    t = xa / W
    inside = np.clip(1 - t ** 2, 0, None)
    yc = 0.55 - P["mouth_curve"] * (t ** 2 - 0.5)
    h = P["mouth_open"] * np.sqrt(inside)
    upper = yc - 0.5 * h - P["lip_raise"] * 0.07 * inside
    lower = yc + 0.5 * h
    lip_sd = np.maximum(np.maximum(upper - 0.025 - y, y - lower - 0.025), (t - 1.0) * W)
    lips = np.zeros((f.B, 3), f32) + (0.62, 0.22, 0.25)
    _paint(rgb, _soft(lip_sd, px), lips)
    cavity = _soft(np.maximum(np.maximum(upper - y, y - lower), (t - 0.9) * W), px)
    _paint(rgb, cavity, dark)


def _glasses(f: _Frame, rgb: np.ndarray, therm: np.ndarray, dark: np.ndarray) -> None:
    """Glasses on the items that wear them: opaque to long-wave infrared, so they look cold in
    thermal, hiding the periorbital cue."""
    g_idx = np.flatnonzero(f.attrs["glasses"])
    if not g_idx.size:
        return
    xg, yg, pg, exg = np.abs(f.x)[g_idx], f.y[g_idx], f.px[g_idx], f.ex[g_idx]
    d = np.sqrt((xg - exg) ** 2 + (yg + 0.12) ** 2)
    frame = _soft(np.abs(d - 0.2) - 0.022, pg)
    lens = _soft(d - 0.2, pg)
    frame = np.maximum(frame, _soft(np.maximum(np.abs(yg + 0.14) - 0.015, xg - (exg - 0.2)), pg))
    sub = rgb[g_idx]
    _paint(sub, frame, dark[g_idx] + 0.05)
    rgb[g_idx] = sub
    amb = f.col("ambient")[g_idx]
    therm[g_idx] += np.clip(lens + frame, 0, 1) * (amb + 3.0 - therm[g_idx])


def render_batch(attrs: dict[str, np.ndarray], image_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render faces from :func:`sample_attributes`: background, head, eyes and brows, nose and
    mouth, glasses, then sensor noise (each item from its own stream).

    Returns ``rgb`` (B, 3, S, S) float32 in [0, 1] and ``thermal`` (B, S, S) float32 in °C.
    """
    f = _Frame(attrs, int(image_size))
    dark = np.zeros((f.B, 3), np.float32) + 0.08
    rgb, therm = _background(f)
    skin, hair = _head(f, rgb, therm)
    _eyes_and_brows(f, rgb, hair, dark)
    _nose_and_mouth(f, rgb, skin, dark)
    _glasses(f, rgb, therm, dark)
    noise = np.empty((f.B, 4, f.S, f.S), np.float32)
    for b, ns in enumerate(attrs["noise_seed"].tolist()):
        noise[b] = np.random.Generator(np.random.PCG64(ns)).standard_normal((4, f.S, f.S), dtype=np.float32)
    rgb += 0.03 * noise[:, :3]
    therm += 0.2 * noise[:, 3] + f.col("thermal_offset")
    np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb, therm


def celsius_to_unit(temp_c: np.ndarray | torch.Tensor):
    """°C → the thermal tensors' [0, 1] scale (:data:`THERMAL_RANGE_C`), clipped."""
    lo, hi = THERMAL_RANGE_C
    x = (temp_c - lo) / (hi - lo)
    return x.clamp(0, 1) if isinstance(x, torch.Tensor) else np.clip(x, 0, 1)


def thermal_to_celsius(thermal: np.ndarray | torch.Tensor):
    """The thermal tensors' [0, 1] scale → °C (for colour bars)."""
    lo, hi = THERMAL_RANGE_C
    return thermal * (hi - lo) + lo


def generate_faces(indices: Sequence[int] | np.ndarray, image_size: int = 64, seed: int = 0,
                   chunk: int = 64) -> dict[str, np.ndarray]:
    """Render items ``indices`` as 8-bit arrays (the datasets' cache format).

    Returns ``rgb`` uint8 (B, 3, S, S), ``thermal`` uint8 (B, S, S) on the
    :data:`THERMAL_RANGE_C` scale, ``label`` int64 (B,), ``subject`` int64 (B,) and
    ``attrs`` (the :func:`sample_attributes` dict, for captions).
    """
    _check_size(image_size)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    attrs = sample_attributes(idx, seed)
    n = len(idx)
    rgb8 = np.empty((n, 3, image_size, image_size), np.uint8)
    th8 = np.empty((n, image_size, image_size), np.uint8)
    for a in range(0, n, chunk):
        sl = slice(a, min(n, a + chunk))
        rgb, th = render_batch({k: v[sl] for k, v in attrs.items()}, image_size)
        rgb8[sl] = np.rint(rgb * 255.0)
        th8[sl] = np.rint(celsius_to_unit(th) * 255.0)
    return dict(rgb=rgb8, thermal=th8, label=attrs["label"].astype(np.int64),
                subject=attrs["subject"].astype(np.int64), attrs=attrs)


MAX_RENDER_SIZE = 64
"""Largest size the full profile's synthetic fallback renders at (see :func:`render_size`)."""


def render_size(image_size: int) -> int:
    """The size to render synthetic faces at for a model that sees ``image_size`` pixels:
    ``image_size`` itself up to :data:`MAX_RENDER_SIZE` (64 px), else 64 px.

    A cartoon face holds no detail that 64 px cannot show, and rendering at 224 px costs
    12× the time and memory (21,000 faces: about 3 GB as bytes, 13 GB as floats). Render at
    this size, keep the bytes (``tensors(torch.uint8)``), and let the model resize each
    batch on its own device (``lab_utils.data.transforms.to_pixels``). Sizes up to 64 px (the
    quick profile's 32 px) are rendered as asked, so their pixels never change."""
    _check_size(image_size)
    return min(int(image_size), MAX_RENDER_SIZE)


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, (int, np.integer)) or not 16 <= image_size <= 512:
        raise ValueError(f"image_size must be an int between 16 and 512 pixels (32–224 is the "
                         f"designed range), got {image_size!r}")


def _check_count(num_samples: int) -> None:
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------
class SynthFER(Dataset):
    """Synthetic paired RGB + thermal expression dataset (FER2013's 7 classes).

    Item ``i`` is ``{"rgb": FloatTensor[3, S, S] in [0, 1], "thermal": FloatTensor[C, S, S]
    in [0, 1] (°C = 20 + 20·value, ``C = thermal_channels``), "label": int, "subject": int}``,
    the same for the same ``(seed, i)`` on every machine.

    All items are rendered in one vectorised pass on first access and kept as 8-bit
    tensors (``4·S²`` bytes per item), so DataLoader iteration is cheap. ``.labels`` and
    ``.subjects`` (int64 arrays) never render anything; ``.tensors()`` gives whole-dataset
    float tensors for fast training loops (``.tensors(torch.uint8)`` the stored bytes, 4×
    smaller). ``transform`` (optional) is applied to the item dict, e.g.
    :class:`~lab_utils.data.PairedRandomHorizontalFlip`. For a model larger than 64 px,
    render at :func:`render_size` and let the model resize.
    """

    def __init__(self, num_samples: int, image_size: int = 64, seed: int = 0,
                 thermal_channels: int = 1, transform: Callable[[dict], dict] | None = None):
        _check_count(num_samples)
        _check_size(image_size)
        if thermal_channels not in (1, 3):
            raise ValueError(f"thermal_channels must be 1 (a heat map) or 3 (replicated for ViT "
                             f"inputs), got {thermal_channels!r}")
        self.num_samples, self.image_size, self.seed = int(num_samples), int(image_size), int(seed)
        self.thermal_channels = thermal_channels
        self.transform = transform
        self.classes = EMOTIONS
        idx = np.arange(self.num_samples)
        self.subjects = idx // ITEMS_PER_SUBJECT
        self.labels = np.array([self._label(i) for i in range(self.num_samples)], np.int64)
        self._cache: dict[str, torch.Tensor] | None = None

    def _label(self, i: int) -> int:
        s = i // ITEMS_PER_SUBJECT
        order = _rng(self.seed, s, 1).permutation(ITEMS_PER_SUBJECT) % NUM_CLASSES
        return int(order[i % ITEMS_PER_SUBJECT])

    def __len__(self) -> int:
        return self.num_samples

    def _render(self) -> dict[str, torch.Tensor]:
        if self._cache is None:
            out = generate_faces(np.arange(self.num_samples), self.image_size, self.seed)
            self._cache = {"rgb": torch.from_numpy(out["rgb"]),
                           "thermal": torch.from_numpy(out["thermal"]).unsqueeze(1)}
            self._attrs = out["attrs"]
        return self._cache

    def __getitem__(self, i: int) -> dict:
        if not -self.num_samples <= i < self.num_samples:
            raise IndexError(f"item {i} out of range for {self.num_samples} items")
        i = i % self.num_samples
        c = self._render()
        th = c["thermal"][i].float().div_(255.0)
        item = {"rgb": c["rgb"][i].float().div_(255.0),
                "thermal": th.expand(3, -1, -1).contiguous() if self.thermal_channels == 3 else th,
                "label": int(self.labels[i]), "subject": int(self.subjects[i])}
        return self.transform(item) if self.transform is not None else item

    def tensors(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """The whole dataset at once: ``rgb`` (N, 3, S, S), ``thermal`` (N, C, S, S) floats
        in [0, 1], ``label`` and ``subject`` (N,) int64 (no transform applied).

        ``dtype=torch.uint8``: the stored bytes (0–255) instead of floats, a quarter of the
        memory; divide by 255 batch by batch (``lab_utils.data.transforms.to_pixels``)."""
        c = self._render()
        if dtype == torch.uint8:
            rgb, th = c["rgb"], c["thermal"]
        elif dtype.is_floating_point:
            rgb, th = c["rgb"].to(dtype) / 255.0, c["thermal"].to(dtype) / 255.0
        else:
            raise ValueError(f"dtype must be torch.uint8 (the stored bytes) or a float type, got {dtype}")
        if self.thermal_channels == 3:
            th = th.repeat(1, 3, 1, 1)
        return {"rgb": rgb, "thermal": th,
                "label": torch.from_numpy(self.labels), "subject": torch.from_numpy(self.subjects)}

    def attributes(self) -> dict[str, np.ndarray]:
        """The generator's attributes of every item (see :func:`sample_attributes`)."""
        self._render()
        return self._attrs

    def __repr__(self) -> str:
        return (f"SynthFER(num_samples={self.num_samples}, image_size={self.image_size}, "
                f"seed={self.seed}, thermal_channels={self.thermal_channels})")
