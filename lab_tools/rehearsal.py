"""The full-profile rehearsal: every notebook, as a Colab student runs it, offline on any machine.

    python -m lab_tools.rehearsal                      # both scenarios, report in outputs/rehearsal/
    python -m lab_tools.rehearsal --scenario data      # only "every data set present"
    python -m lab_tools.rehearsal --prepare /tmp/r     # build the world, print the env, run nothing
    make rehearsal                                     # what CI runs after `make test`

The full profile downloads pretrained weights and reads real data sets. Neither can be
reached here, so the rehearsal builds a stand-in for each, in the formats the real ones have,
and lets the lab's own loading code find them where it always looks:

The stand-in caches are built by ``lab_tools.standins``:

* **a stand-in Hugging Face cache** (``HF_HUB_CACHE``): small random-init models of the
  same architectures, saved under the exact hub ids the configs name
  (``google/vit-base-patch16-224-in21k`` as a ``ViTModel``, ``openai/clip-vit-base-patch32``
  as a ``CLIPModel`` with a working byte-level CLIP tokenizer, ``distilbert-base-uncased``
  as a ``DistilBertModel`` with a real uncased WordPiece tokenizer), in the cache's own
  layout (``models--owner--name/snapshots/<commit>/`` + ``refs/main``). When
  ``configs/model.yml`` names one of OpenAI's ResNet CLIPs (``RN50`` …), open_clip's weight
  file is stood in for too, full size (``timm/resnet50_clip.openai``: a ResNet CLIP's
  architecture is fixed by its name);
* **a stand-in torch hub cache** (``TORCH_HOME``): random ResNet weights under
  torchvision's own file names (``hub/checkpoints/resnet50-11ad3fa6.pth``);
* **small real-format data** in ``data/`` of a temporary copy of the repository: the
  FER2013 CSV and the image-folder release, paired RGB-thermal folders with subject ids,
  Flickr8k ``captions.txt`` + ``Images/``, a COCO caption JSON — drawn from the synthetic
  face world, so the pictures are faces and the captions describe them.

Two scenarios: ``data`` (every data set present) and ``none`` (a student's first day: the
notebooks fall back to the synthetic faces). Sizes shrink only through config values, the
way a student edits ``configs/*.yml`` (:data:`SHRINK`). Stand-in weights are random, so
learning-outcome checks may miss: they warn, as in every student's run (``LAB_OUTCOME_CHECKS=warn``
is set even if the caller asked for strict, see ``lab_utils.check``), and the report lists the
missed ones; every other check and every exception fails the rehearsal. The report
gives each notebook's status, wall time and peak host memory (the kernel's peak RSS).

On a CUDA machine the same command runs the notebooks on the GPU (the full profile's
device), which is what catches a tensor left on the wrong device.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from .standins import build_standin_hub, build_standin_torch_hub, source_root

SCENARIOS = ("data", "none")



# Config edits a student would make to run the full profile on a small machine:
# ``{file: {dotted key: value}}``. Only values change; every key keeps its meaning.
SHRINK: dict[str, dict[str, Any]] = {
    "vit_patching.yml": {"train.num_train": 280, "train.num_val": 70, "train.epochs": 1},
    "clip.yml": {"image.image_size": 64, "data.num_train": 280, "data.num_test": 70,
                 "train.epochs": 1, "train.batch_size": 32},
    "model.yml": {"epochs": 1, "batch_size": 16},
    "fer.yml": {"data.image_size": 64, "data.num_samples": 140, "train.batch_size": 16,
                "train.epochs": 2, "train.head_only_epochs": 1, "train.top_layers": 1,
                "checkpointing.batch_size": 8},
    "fusion.yml": {"data.image_size": 64, "data.num_samples": 140, "train.batch_size": 16,
                   "train.epochs": 1, "seeds": 1},
}


# ----------------------------------------------------------------------------- real-format data
def _faces(n: int, size: int, seed: int, thermal: bool = False):
    from lab_utils.data.synthetic import SynthFER

    return SynthFER(n, image_size=size, seed=seed, thermal_channels=1 if thermal else 3).tensors()


def _uint8(images) -> Any:
    """``(N, C, H, W)`` floats in [0, 1] → ``(N, H, W, C)`` uint8 (what image files hold)."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def write_fer2013(root: Path, per_split: Mapping[str, int] | None = None, seed: int = 7) -> dict[str, Path]:
    """FER2013 in both of its releases, from synthetic faces drawn gray at 48 px:

    * ``root/fer2013/fer2013.csv`` — ``emotion,pixels,Usage`` (2,304 space-separated values),
      splits Training / PublicTest / PrivateTest in file order;
    * ``root/fer2013_folders/{train,test}/<class>/<n>.png`` — the image-folder release
      (class folders named as Kaggle names them)."""
    import numpy as np
    from PIL import Image

    from lab_utils.data.synthetic import EMOTIONS

    per_split = dict(per_split or {"Training": 140, "PublicTest": 70, "PrivateTest": 70})
    n = sum(per_split.values())
    faces = _faces(n, 48, seed)
    gray = (faces["rgb"].mean(1).clamp(0, 1) * 255).round().byte().numpy()  # (N, 48, 48)
    labels = faces["label"].numpy()
    usage = np.repeat(list(per_split), list(per_split.values()))
    csv_dir = root / "fer2013"
    csv_dir.mkdir(parents=True, exist_ok=True)
    lines = ["emotion,pixels,Usage"] + [f"{y},{' '.join(map(str, g.ravel()))},{u}"
                                        for y, g, u in zip(labels, gray, usage)]
    (csv_dir / "fer2013.csv").write_text("\n".join(lines) + "\n")
    folders = root / "fer2013_folders"
    for i, (y, g, u) in enumerate(zip(labels, gray, usage)):
        split = "train" if u == "Training" else "test"
        out = folders / split / EMOTIONS[y]
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(g, mode="L").save(out / f"{u}_{i:05d}.png")
    return {"csv": csv_dir, "folders": folders}


def write_paired_rgbt(root: Path, subjects: int = 10, seed: int = 8) -> Path:
    """``root/rgbt/rgb/<class>/S<id>_<class>_<n>.jpg`` + ``root/rgbt/thermal/<class>/…png``
    (16-bit gray, 0.01 °C per step, like radiometric exports), subject ids in the names."""
    import numpy as np
    from PIL import Image

    from lab_utils.data.synthetic import EMOTIONS, ITEMS_PER_SUBJECT, thermal_to_celsius

    faces = _faces(subjects * ITEMS_PER_SUBJECT, 96, seed, thermal=True)
    rgb = _uint8(faces["rgb"])
    centi = (thermal_to_celsius(faces["thermal"][:, 0]) * 100).round().numpy().astype(np.uint16)
    base = root / "rgbt"
    for i, (y, s) in enumerate(zip(faces["label"].tolist(), faces["subject"].tolist())):
        name = f"S{s + 1:02d}_{EMOTIONS[y]}_{i:04d}"
        for modality in ("rgb", "thermal"):
            (base / modality / EMOTIONS[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb[i]).save(base / "rgb" / EMOTIONS[y] / f"{name}.jpg", quality=92)
        Image.fromarray(centi[i]).save(base / "thermal" / EMOTIONS[y] / f"{name}.png")
    return base


def write_captions(root: Path, flickr_images: int = 120, coco_images: int = 40, seed: int = 9) -> dict[str, Path]:
    """Caption data sets of synthetic faces, in their download formats:

    * Flickr8k: ``root/flickr8k/captions.txt`` (``image,caption``, 5 lines per image) and
      ``root/flickr8k/Images/<id>.jpg``;
    * COCO: ``root/coco/annotations/captions_val2017.json`` (``images`` + ``annotations``)
      and ``root/coco/val2017/<12-digit id>.jpg``."""
    from PIL import Image

    from lab_utils.data.captions import SynthFaceCaptions

    n = flickr_images + coco_images
    data = SynthFaceCaptions(n, image_size=128, seed=seed, captions_per_image=5)
    tensors = data.tensors()
    images = _uint8(tensors["image"] if "image" in tensors else tensors["rgb"])
    captions = data.captions
    flickr = root / "flickr8k"
    (flickr / "Images").mkdir(parents=True, exist_ok=True)
    lines = ["image,caption"]
    for i in range(flickr_images):
        name = f"{1000268201 + i}_{i:06x}.jpg"
        Image.fromarray(images[i]).save(flickr / "Images" / name, quality=90)
        lines += [f"{name},{c}" if "," not in c else f'{name},"{c}"' for c in captions[i]]
    (flickr / "captions.txt").write_text("\n".join(lines) + "\n")
    coco = root / "coco"
    (coco / "val2017").mkdir(parents=True, exist_ok=True)
    (coco / "annotations").mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for k in range(coco_images):
        i, image_id = flickr_images + k, 139 + k
        name = f"{image_id:012d}.jpg"
        Image.fromarray(images[i]).save(coco / "val2017" / name, quality=90)
        entries.append({"id": image_id, "file_name": name, "height": 128, "width": 128})
        annotations += [{"id": 10_000 + 5 * k + j, "image_id": image_id, "caption": c}
                        for j, c in enumerate(captions[i])]
    (coco / "annotations" / "captions_val2017.json").write_text(json.dumps(
        {"info": {"description": "rehearsal stand-in"}, "images": entries, "annotations": annotations}))
    return {"flickr8k": flickr, "coco": coco}


def write_real_data(data_dir: str | os.PathLike) -> dict[str, Any]:
    """Every real-format data set the full profile reads, small, into ``data_dir``."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    return {"fer2013": write_fer2013(root), "rgbt": write_paired_rgbt(root), **write_captions(root)}


def check_loaders(data_dir: str | os.PathLike) -> list[str]:
    """Load every written data set with the lab's public loaders (also the formats no
    notebook reads by default: FER2013's folder release, COCO JSON); returns one line each."""
    from lab_utils.data import load_captions, load_fer2013, load_paired_rgbt

    root = Path(data_dir)
    lines = []
    csv = load_fer2013(root / "fer2013")
    lines.append("FER2013 CSV: " + ", ".join(f"{k} {len(v)}" for k, v in csv.items()))
    folders = load_fer2013(root / "fer2013_folders")
    lines.append("FER2013 folders: " + ", ".join(f"{k} {len(v)}" for k, v in folders.items()))
    if sorted(len(v) for v in folders.values()) != sorted([len(csv["Training"]), len(csv["PublicTest"]) + len(csv["PrivateTest"])]):
        raise AssertionError("the FER2013 folder release does not hold the CSV's faces")
    rgbt = load_paired_rgbt(root / "rgbt", image_size=64)
    lines.append("paired RGB-thermal: " + ", ".join(f"{k} {len(v)}" for k, v in rgbt.items()))
    flickr = load_captions(root / "flickr8k" / "captions.txt")
    coco = load_captions(root / "coco" / "annotations" / "captions_val2017.json", root / "coco" / "val2017")
    lines.append(f"Flickr8k: {len(flickr)} images · COCO: {len(coco)} images")
    return lines


# ----------------------------------------------------------------------------- configs
def set_config_value(path: str | os.PathLike, dotted: str, value: Any) -> None:
    """Change one value in a YAML config in place, keeping every comment and the layout —
    what a student does in an editor. ``dotted``: ``"train.epochs"``."""
    path = Path(path)
    lines = path.read_text().splitlines(keepends=True)
    lo, hi, parent_indent = 0, len(lines), -1
    keys = dotted.split(".")
    for level, key in enumerate(keys):
        child_indent, found = None, None
        for i in range(lo, hi):
            body = lines[i].lstrip()
            if not body.strip() or body.startswith("#"):
                continue
            indent = len(lines[i]) - len(body)
            if indent <= parent_indent:
                hi = i                                   # left the parent section
                break
            child_indent = indent if child_indent is None else child_indent
            if indent == child_indent and body.startswith(key + ":"):
                found = i
                break
        if found is None:
            raise KeyError(f"{path.name}: no key {dotted!r} to change")
        if level < len(keys) - 1:
            lo, parent_indent = found + 1, child_indent
            continue
        m = re.match(r"^(\s*[^:]+:\s*)([^#\n]*?)(\s*#.*)?(\n?)$", lines[found])
        text = str(value).lower() if isinstance(value, bool) else str(value)
        lines[found] = f"{m.group(1)}{text}{m.group(3) or ''}{m.group(4)}"
    path.write_text("".join(lines))


def shrink_configs(configs_dir: str | os.PathLike, edits: Mapping[str, Mapping[str, Any]] = SHRINK) -> None:
    """Apply :data:`SHRINK` to ``configs_dir`` and check that every edited file still loads."""
    from lab_utils.config import load_config

    for name, values in edits.items():
        for dotted, value in values.items():
            set_config_value(Path(configs_dir) / name, dotted, value)
        load_config(Path(configs_dir) / name, profile="full")


# ----------------------------------------------------------------------------- the run
def copy_repo(dest: Path, source: Path | None = None) -> Path:
    """Copy the repository's tracked and untracked-but-not-ignored files into ``dest`` (a
    fresh clone of the working tree, without .venv, outputs or checkpoints)."""
    source = source or source_root()
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=source, capture_output=True)
    if listed.returncode == 0:
        files = listed.stdout.decode().split("\0")
    else:  # not a git checkout (an exported tree): everything but what .gitignore keeps out
        top = {".git", ".venv", "outputs", "checkpoints", "data", ".whl"}
        files = [str(p.relative_to(source)) for p in source.rglob("*")
                 if p.is_file() and p.relative_to(source).parts[0] not in top
                 and not {"__pycache__", ".ipynb_checkpoints"} & set(p.relative_to(source).parts)]
        files += ["data/README.md", "checkpoints/README.md"]
    for rel in filter(None, files):
        src = source / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def prepare(workdir: str | os.PathLike, scenario: str) -> dict[str, str]:
    """Build the stand-in caches (once per ``workdir``) and a copy of the repository for
    ``scenario``; returns the environment a notebook runs in."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    work = Path(workdir)
    hub, torch_home = work / "hf" / "hub", work / "torch"
    if not (work / "hf" / ".built").exists():
        build_standin_hub(hub)
        build_standin_torch_hub(torch_home)
        (work / "hf" / ".built").write_text("ok\n")
    clone = work / f"lab-{scenario}"
    if clone.exists():
        shutil.rmtree(clone)
    copy_repo(clone)
    shrink_configs(clone / "configs")
    if scenario == "data":
        write_real_data(clone / "data")
    return {
        "LAB_PROFILE": "full", "LAB_OUTCOME_CHECKS": "warn", "LAB_ROOT": str(clone),
        "HF_HOME": str(work / "hf"), "HF_HUB_CACHE": str(hub), "TORCH_HOME": str(torch_home),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": os.pathsep.join([str(clone)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0",
    }


def run_scenario(workdir: Path, scenario: str, notebooks: list[str] | None = None, timeout: int = 900) -> list[dict]:
    """Run the notebooks of one scenario in its copy; returns the runner's per-notebook rows."""
    env = prepare(workdir, scenario)
    clone = Path(env["LAB_ROOT"])
    if scenario == "data":
        for line in check_loaders(clone / "data"):
            print("  loader ·", line, flush=True)
    names = notebooks or sorted(p.name for p in (clone / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    paths = [str(clone / "notebooks" / n) for n in names]
    summary = clone / "outputs" / "summary.json"
    cmd = [sys.executable, "-m", "lab_tools.run_notebooks", *paths, "--timeout", str(timeout)]
    subprocess.run(cmd, cwd=clone, env={**os.environ, **env}, check=False)
    rows = json.loads(summary.read_text()) if summary.exists() else []
    for row in rows:
        row["outcome_reports"] = [c["detail"] for c in row.get("outcome_checks", []) if not c["held"]]   # missed
        row["scenario"] = scenario
    return rows


def report(rows: list[dict], seconds: float, device: str) -> str:
    """The rehearsal's table: one line per scenario and notebook."""
    out = [f"Full-profile rehearsal on {device}, {seconds / 60:.1f} min in all",
           f"{'scenario':<9} {'notebook':<26} {'status':<8} {'wall s':>7} {'peak RSS GB':>12} {'outcomes missed':>18}"]
    for r in rows:
        peak = r.get("peak_rss_mb")
        out.append(f"{r['scenario']:<9} {r['notebook']:<26} {r['status']:<8} {r['seconds']:>7.1f} "
                   f"{(peak / 1024 if peak else float('nan')):>12.2f} {len(r['outcome_reports']):>18}")
        if r.get("error"):
            out.append(f"{'':<9} └ {r['error']}")
        for message in r["outcome_reports"]:
            out.append(f"{'':<9} ⚠ {message}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    parser.add_argument("--notebooks", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temporary folder, removed after)")
    parser.add_argument("--prepare", type=Path, metavar="DIR",
                        help="only build the stand-ins and the copies in DIR and print the environment")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)

    if args.prepare:
        for scenario in scenarios:
            env = prepare(args.prepare, scenario)
            print(f"# scenario {scenario}: run notebooks from {env['LAB_ROOT']}/notebooks with")
            print("export " + " ".join(f"{k}={v}" for k, v in env.items()))
        return 0

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    start = time.perf_counter()
    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="lab-rehearsal-")
    workdir = args.workdir or Path(tmp.name)
    rows: list[dict] = []
    try:
        for scenario in scenarios:
            print(f"━━ scenario: {scenario} ━━", flush=True)
            rows += run_scenario(workdir, scenario, args.notebooks, args.timeout)
    finally:
        if tmp is not None:
            tmp.cleanup()
    seconds = time.perf_counter() - start
    text = report(rows, seconds, device)
    print("\n" + text)
    out = source_root() / "outputs" / "rehearsal"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.txt").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps({"device": device, "seconds": round(seconds, 1), "rows": rows},
                                                indent=2, ensure_ascii=False) + "\n")
    expected = len(scenarios) * len(args.notebooks or list((source_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    ok = len(rows) == expected and all(r["status"] == "ok" for r in rows)
    print(f"\nrehearsal {'passed' if ok else 'FAILED'}: {sum(r['status'] == 'ok' for r in rows)} of {expected} "
          "notebook runs ok")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
