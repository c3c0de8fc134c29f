"""Forward-pass time of the from-scratch ViT vs ``transformers.ViTModel`` (sdpa) on CPU.

Both models get the same config and the same weights (``VisionTransformer.from_huggingface``)
and run under ``torch.inference_mode`` with a fixed thread count. After warm-up, the two
models are timed in alternation (A, B, A, B, …) so that load from other processes hits both
alike; the script prints the median times and their ratio (target: ratio ≤ 1.2).

Usage (from the repository root)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/vit_forward.py                  # ViT-B/16, 224 px, batch 8
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/vit_forward.py --preset small   # ViT-S/16
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/vit_forward.py --threads 1 --runs 7
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import ViTConfig, ViTModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lab_utils.models.vit import VisionTransformer  # noqa: E402

PRESETS = {
    # name: (hidden, layers, heads, mlp, image, patch)
    "base": (768, 12, 12, 3072, 224, 16),  # ViT-B/16, the seeds' google/vit-base-patch16-224-in21k
    "small": (384, 12, 6, 1536, 224, 16),  # ViT-S/16
    "tiny": (192, 12, 3, 768, 224, 16),  # ViT-Ti/16
    "quick": (64, 2, 4, 128, 32, 8),  # the lab's quick-profile config
}


def time_once(fn, x: torch.Tensor) -> float:
    """Wall seconds of one call ``fn(x)``."""
    start = time.perf_counter()
    fn(x)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hidden, layers, heads, mlp, image, patch = PRESETS[args.preset]
    config = ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                       intermediate_size=mlp, image_size=image, patch_size=patch,
                       attn_implementation="sdpa" if getattr(ViTModel, "_supports_sdpa", False) else "eager")
    hf = ViTModel(config, add_pooling_layer=False).eval()
    ours = VisionTransformer.from_huggingface(hf).eval()
    x = torch.randn(args.batch, 3, image, image)

    with torch.inference_mode():
        diff = (hf(x).last_hidden_state - ours(x).last_hidden_state).abs().max().item()
        models = {"from-scratch": lambda t: ours(t), "transformers": lambda t: hf(t)}
        for _ in range(args.warmup):
            for fn in models.values():
                fn(x)
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.runs):
            for name, fn in models.items():
                times[name].append(time_once(fn, x))

    med = {name: statistics.median(t) for name, t in times.items()}
    ratio = med["from-scratch"] / med["transformers"]
    print(f"preset={args.preset} (D={hidden}, L={layers}, h={heads}, {image}px/{patch}) "
          f"batch={args.batch} threads={args.threads} runs={args.runs} torch={torch.__version__}")
    print(f"max |last_hidden_state difference| = {diff:.2e}")
    for name, m in med.items():
        print(f"{name:>13}: median {m * 1000:8.1f} ms  (min {min(times[name]) * 1000:.1f} ms)")
    print(f"ratio from-scratch / transformers = {ratio:.3f}  (target ≤ 1.2)")
    return ratio


if __name__ == "__main__":
    main()
