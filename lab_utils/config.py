"""Profiles, reproducibility, and validated YAML configs.

* ``get_profile()`` — ``"quick"`` (synthetic data, small models, CPU, offline) or ``"full"``
  (pretrained weights, real data, GPU). ``LAB_PROFILE`` decides; unset, it is ``full`` on
  a CUDA machine and ``quick`` elsewhere.
* ``setup_notebook(name)`` — the first code cell of every notebook: picks the profile,
  pins threads, seeds everything and prints one line saying what was chosen and why.
* ``load_config(path)`` — reads a YAML file and validates it against the schema of its
  family (``model``, ``clip``, …; see ``lab_utils.config_schemas``), taken from
  ``family=``, the file name, or the file's own keys (so a copy such as
  ``configs/my_run.yml`` works). In the quick profile ``<family>.quick.yml`` is merged on
  top: it changes sizes, never the meaning of a key.
"""
from __future__ import annotations

import difflib
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml

from . import paths
from .check import reset_outcome_record
from .config_schemas import SCHEMAS, ConfigError, Field

PROFILES = ("quick", "full")
_PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"   # the lab's own configs/
QUICK_THREADS = 2  # 1 and 2 threads sum in different orders: pin it so every machine agrees


# --------------------------------------------------------------------------- profiles
def _profile_and_reason() -> tuple[str, str]:
    value = os.environ.get("LAB_PROFILE", "").strip()
    if value:
        if value.lower() not in PROFILES:
            raise ConfigError(
                f"LAB_PROFILE={value!r} is not a profile. Allowed: {', '.join(PROFILES)}. "
                "Set it before starting Python (`export LAB_PROFILE=quick`, or "
                "`%env LAB_PROFILE=quick` as a notebook's first cell), or unset it to let "
                "the lab choose (full on a CUDA GPU, quick otherwise).")
        return value.lower(), f"LAB_PROFILE={value.lower()} was set"
    if torch.cuda.is_available():
        return "full", f"LAB_PROFILE is not set and a CUDA GPU ({torch.cuda.get_device_name(0)}) is available"
    return "quick", "LAB_PROFILE is not set and no CUDA GPU was found"


def get_profile() -> str:
    """``"quick"`` or ``"full"``: ``LAB_PROFILE`` if set, else ``full`` with CUDA, else ``quick``."""
    return _profile_and_reason()[0]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and CUDA) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_device(profile: str | None = None) -> torch.device:
    """CUDA in the full profile when available; the quick profile always runs on the CPU."""
    profile = profile or get_profile()
    if profile == "full" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


BF16_MIN_CAPABILITY = (8, 0)   # Ampere: the first NVIDIA GPUs with bfloat16 tensor cores


def amp_dtype(device: torch.device | str, amp: bool | None = None) -> torch.dtype | None:
    """The mixed-precision type training uses on ``device``: bf16 on GPUs with bfloat16
    tensor cores (compute capability ≥ 8.0: A100, L4, H100), fp16 below (Colab's T4 is 7.5,
    V100 7.0, P100 6.0), where ``fit`` adds a gradient scaler so that small fp16 gradients do
    not underflow; ``None`` on the CPU or when ``amp=False``.

    Decided by the capability, not by ``torch.cuda.is_bf16_supported()``: that call answers
    ``True`` on a T4 too, because PyTorch can *emulate* bf16 there — several times slower
    than the T4's fp16 tensor cores."""
    device = torch.device(device)
    if device.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= BF16_MIN_CAPABILITY else torch.float16


def describe_amp(device: torch.device | str) -> str:
    """One phrase for the set-up line: which mixed precision ``device`` gets, and why."""
    dtype = amp_dtype(device)
    if dtype is None:
        return "AMP: off (CPU, float32)"
    device = torch.device(device)
    name = torch.cuda.get_device_name(device)
    major, minor = torch.cuda.get_device_capability(device)
    if dtype == torch.bfloat16:
        return f"AMP: bf16 ({name}, compute capability {major}.{minor}, has bfloat16 tensor cores)"
    return (f"AMP: fp16 + GradScaler ({name}, compute capability {major}.{minor}: no bfloat16 tensor cores, "
            "bf16 would be emulated)")


@dataclass
class Lab:
    """What ``setup_notebook`` chose: profile, device, seed and the notebook's output folder."""

    name: str
    profile: str
    reason: str
    device: torch.device
    seed: int
    threads: int
    out_dir: Path = field(repr=False)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def log_metrics(self, **metrics: Any) -> Path:
        """Merge ``metrics`` into ``outputs/<notebook>/metrics.json`` (read by ``make lab``)."""
        path = self.out_dir / "metrics.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update({k: _jsonable(v) for k, v in metrics.items()})
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        return path


def metric_key(*words: Any) -> str:
    """One ``metrics.json`` key from a few words: lower case, spaces become ``_``, anything
    else that is not a letter, digit or ``_`` is dropped (``metric_key("f1", "rgb only, 2
    encoders")`` → ``"f1_rgb_only_2_encoders"``). Every notebook spells its keys this way, so
    ``make lab``'s summary and ``benchmarks/robustness.py`` read one convention."""
    return re.sub(r"[^a-z0-9_]", "", "_".join(str(w) for w in words).lower().replace(" ", "_"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, np.generic)):
        value = value.item()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _thread_override() -> int | None:
    """``LAB_THREADS`` (a positive integer) or ``None`` when unset."""
    value = os.environ.get("LAB_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"LAB_THREADS={value!r} is not a thread count. Allowed: a whole number ≥ 1 "
                          "(e.g. LAB_THREADS=4), or unset it to keep each notebook's own count.")
    return int(value)


def setup_notebook(name: str, seed: int = 0, threads: int | None = None) -> Lab:
    """First cell of every notebook: choose the profile, pin threads, seed, print one line.

    The quick profile pins torch to ``threads`` (default ``QUICK_THREADS``): the thread count
    decides how sums are split, so pinning it removes one of the differences between a 2-core
    CI runner and an 8-core laptop (the CPU's own kernels remain: results still move by a few
    points between machines, the conclusions do not; ``benchmarks/robustness.py``).
    Notebooks that train only tiny models pass ``threads=1``: at hidden size 64 the threads
    spend more time synchronising than computing (measured here: 1 thread trains the quick
    ViT 1.6× faster than 2). ``LAB_THREADS=N`` overrides the count (a faster laptop, or the
    benchmark's emulation of other machines); the set-up line then says so.
    Figures go to ``outputs/<name>/``; the notebook's outcome record starts anew.
    """
    profile, reason = _profile_and_reason()
    override = _thread_override()
    if profile == "quick" or override:
        torch.set_num_threads(override or threads or QUICK_THREADS)
    paths.set_notebook(name)
    reset_outcome_record()
    seed_everything(seed)
    device = get_device(profile)
    lab = Lab(name=name, profile=profile, reason=reason, device=device, seed=seed,
              threads=torch.get_num_threads(), out_dir=paths.outputs_dir(name))
    amp = f" · {describe_amp(device)}" if device.type == "cuda" else ""   # CPU: the line stays as it was
    threads_set = f" (LAB_THREADS={override})" if override else ""
    print(f"Profile: {profile} ({reason}) · device: {device.type}{amp} · "
          f"torch threads: {lab.threads}{threads_set} · seed: {seed}")
    return lab


# --------------------------------------------------------------------------- configs
class Config(dict):
    """A dict whose keys are also attributes (``cfg.fusion.method``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}; keys: {', '.join(self)}") from None

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Config) else v for k, v in self.items()}


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        known = sorted(p.name for p in paths.configs_dir().glob("*.yml"))
        raise ConfigError(f"Config file not found: tried {path.resolve()}. "
                          f"Configs in {paths.configs_dir()}: {', '.join(known) or 'none'}.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}. Fix the file "
                          "(indentation and 'key: value' pairs) and load it again.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected 'key: value' pairs at the top level, "
                          f"got a {type(data).__name__}.")
    return data


def _merge(base: dict, override: Mapping) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _optional(schema: Mapping) -> bool:
    """A section that may be left out: every key in it (and in its sections) has a default."""
    return all(spec.has_default if isinstance(spec, Field) else _optional(spec) for spec in schema.values())


def validate(data: Mapping, schema: Mapping, source: str = "config", prefix: str = "",
             partial: bool = False) -> Config:
    """Check ``data`` against ``schema`` (see ``lab_utils.config_schemas``) and coerce values.

    Raises ``ConfigError`` naming the key and the value for an unknown key (with the known
    keys and the closest match), a missing key, a wrong type or an invalid choice/range.
    ``partial=True`` allows missing keys (for override files).
    """
    out = Config()
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(str(key), [str(k) for k in schema], n=1)
            hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown key {dotted!r}.{hint} "
                              f"Known keys{' under ' + prefix[:-1] if prefix else ''}: "
                              f"{', '.join(map(str, schema))}.")
        spec = schema[key]
        if isinstance(spec, Field):
            out[key] = spec.coerce(value, dotted, source)
        else:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {dotted!r} must be a section with keys "
                                  f"{', '.join(spec)}, got {value!r}.")
            out[key] = validate(value, spec, source, dotted + ".", partial)
    if not partial:
        for key, spec in schema.items():
            if key in out:
                continue
            if isinstance(spec, Field) and spec.has_default:
                out[key] = spec.default
            elif not isinstance(spec, Field) and _optional(spec):   # a section of defaults only
                out[key] = validate({}, spec, source, f"{prefix}{key}.")
            else:
                raise ConfigError(f"{source}: missing key {prefix}{key!r}; add it "
                                  f"(see the comments in the lab's configs/ files).")
    return out


def _top_level_fit(data: Mapping, schema: Mapping) -> bool:
    """``data``'s top-level keys are all in ``schema``, and it has every key the schema
    requires (a section, or a field without a default)."""
    required = {k for k, spec in schema.items()
                if not (spec.has_default if isinstance(spec, Field) else _optional(spec))}
    return set(data) <= set(schema) and required <= set(data)


def config_family(data: Mapping, source: str = "config") -> str:
    """The config family whose schema fits ``data``, judged by its keys (not a file name).

    A family fits when the top-level keys are its keys and every key it requires is there;
    when several fit, the one(s) the whole file validates against. Raises ``ConfigError``
    when none fits (naming the closest family and its first complaint) or when the file is
    truly ambiguous (naming the families that fit)."""
    fits = [name for name, schema in SCHEMAS.items() if _top_level_fit(data, schema)]
    if len(fits) > 1:
        valid = []
        for name in fits:
            try:
                validate(data, SCHEMAS[name], source)
                valid.append(name)
            except ConfigError:
                pass
        fits = valid or fits
    if len(fits) == 1:
        return fits[0]
    how = ("Pass the family explicitly: load_config(path, family=...), e.g. family='model' "
           "for a copy of configs/model.yml.")
    if fits:
        raise ConfigError(f"{source}: its keys fit several config families ({', '.join(fits)}); "
                          f"the lab cannot tell which experiment it describes. {how}")
    overlap = {name: len(set(data) & set(schema)) for name, schema in SCHEMAS.items()}
    closest = max(overlap, key=overlap.get)
    if not overlap[closest]:
        raise ConfigError(f"{source}: its top-level keys ({', '.join(map(str, data)) or 'none'}) "
                          f"belong to no config family (known: {', '.join(sorted(SCHEMAS))}). "
                          f"Start from a copy of one of the lab's configs/*.yml. {how}")
    try:
        validate(data, SCHEMAS[closest], source)
    except ConfigError as err:
        raise ConfigError(f"{err} (The file was read as a {closest!r} config, the family its "
                          f"keys are closest to. {how})") from None
    raise AssertionError("unreachable: a config that validates fits its family")


def config_fingerprint(cfg: Mapping) -> str:
    """Twelve hex digits that name a loaded config's experiment: a hash of every key and value
    but ``seed`` (a benchmark runs one config over many seeds). Two runs with the same
    fingerprint trained the same things the same way; a benchmark's rows stand for a notebook
    only while its config still has the fingerprint they were measured with."""
    import hashlib

    body = {k: v for k, v in cfg.items() if k != "seed"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_config(path: str | os.PathLike, profile: str | None = None,
                schema: Mapping | None = None, family: str | None = None) -> Config:
    """Load and validate a YAML config; returns a ``Config`` (dict with attribute access).

    The schema is ``schema`` when given, else that of ``family`` (``"model"``, ``"clip"``,
    … see ``lab_utils.config_schemas.SCHEMAS``), else the family named by the file
    (``configs/model.yml`` → ``"model"``), else the family whose keys the file has
    (``config_family``): a copy such as ``configs/my_run.yml`` loads like the file it was
    copied from.

    In the quick profile the family's size overrides are merged on top, validated with the
    same schema: ``<name>.quick.yml`` next to the file if there is one, else
    ``<family>.quick.yml`` next to it, else the lab's ``configs/<family>.quick.yml``.
    """
    path = Path(path)
    stem = path.name.split(".")[0]
    profile = profile or get_profile()
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is not a profile. Allowed: {', '.join(PROFILES)}.")
    data = _read_yaml(path)
    if schema is None:
        if family is None:
            family = stem if stem in SCHEMAS else config_family(data, str(path))
        elif family not in SCHEMAS:
            raise ConfigError(f"family={family!r} is not a config family. Known families: "
                              f"{', '.join(sorted(SCHEMAS))}.")
        schema = SCHEMAS[family]
    validate(data, schema, str(path))
    if profile == "quick" and not path.name.endswith(".quick.yml"):
        candidates = [path.with_name(f"{stem}.quick.yml")]
        if family is not None:
            candidates += [folder / f"{family}.quick.yml" for folder in
                           (path.parent, paths.configs_dir(), _PACKAGED_CONFIGS)]
        override = next((c for c in candidates if c.is_file()), None)
        if override is not None:
            extra = _read_yaml(override)
            validate(extra, schema, str(override), partial=True)
            data = _merge(data, extra)
    return validate(data, schema, str(path))
