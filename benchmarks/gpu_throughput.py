"""Training throughput, MFU and peak GPU memory of the full profile's models, at full size.

    python benchmarks/gpu_throughput.py            # on a CUDA machine
    python benchmarks/gpu_throughput.py --json out.json --steps 20

For each notebook's heaviest training step (its config's batch size and input size), the
model is built at full size with random weights (ViT-B/16, ResNet50, CLIP ViT-B/32: the
same architectures the hub weights fill, nothing downloaded), trained for a few warm-up
steps and then ``--steps`` timed steps with the mixed precision ``fit`` uses (bf16 where
the GPU has it, else fp16 + GradScaler). Reported: images/s, achieved TFLOP/s, MFU (the
FLOPs of one step counted by ``lab_utils.cost`` on the meta device, per second, over the
GPU's dense peak from ``lab_utils.cost.GPUS``) and the peak of ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab_utils import cost, cost_nets  # noqa: E402
from lab_utils.config import amp_dtype, load_config  # noqa: E402
from lab_utils.paths import configs_dir  # noqa: E402
from lab_utils.training import optimizer_step  # noqa: E402


def workloads() -> list[dict]:
    """(notebook, what, Net, batch size, kind) of each notebook's heaviest step, full profile."""
    clip = load_config(configs_dir() / "clip.yml", profile="full")
    hybrid = load_config(configs_dir() / "model.yml", profile="full")
    fer = load_config(configs_dir() / "fer.yml", profile="full")
    fusion = load_config(configs_dir() / "fusion.yml", profile="full")
    return [
        dict(notebook="02_clip_contrastive", what=f"{clip.image.backbone} image encoder, {clip.image.image_size} px",
             net=cost_nets.clip_image_net(clip.image.backbone, clip.image.image_size, clip.embed_dim),
             batch=clip.train.batch_size),
        dict(notebook="03_hybrid_vit_clip", what=f"ViT-B/16 + cached CLIP ({hybrid.fusion.method}), 224 px",
             net=cost_nets.hybrid_net("full", hybrid.fusion.method, 224), batch=hybrid.batch_size),
        dict(notebook="04_vit_fer_finetuning", what=f"ViT-B/16 full fine-tuning, {fer.data.image_size} px",
             net=cost_nets.fer_net("full", fer.data.image_size), batch=fer.train.batch_size),
        dict(notebook="05_rgb_thermal_fusion", what=f"two ViT-B/16 (late fusion), {fusion.data.image_size} px",
             net=cost_nets.fer_net("full", fusion.data.image_size,
                              (("mode", "combined"), ("fusion_strategy", "late"), ("fusion_type", "concat"))),
             batch=fusion.train.batch_size),
    ]


def _inputs_on(net: cost_nets.Net, batch: int, device: torch.device):
    args = net.inputs(batch)
    move = (lambda t: t.to(device).normal_() if t is not None and t.is_floating_point()
            else t.to(device) if t is not None else None)
    return {k: move(v) for k, v in args.items()} if isinstance(args, dict) else tuple(move(a) for a in args)


def measure(net: cost_nets.Net, batch: int, device: torch.device, steps: int, warmup: int = 3) -> dict:
    """Train ``net`` (random init, full size) for ``steps`` timed steps of ``batch`` items."""
    torch.manual_seed(0)
    model = net.build().to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    dtype = amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    args = _inputs_on(net, batch, device)

    def step():
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            out = model(**args) if isinstance(args, dict) else model(*args)
            out = getattr(out, "logits", getattr(out, "last_hidden_state", out))
            loss = (out[0] if isinstance(out, tuple) else out).float().pow(2).mean()
        (scaler.scale(loss) if scaler else loss).backward()
        optimizer_step(optimizer, scaler)

    cuda = device.type == "cuda"
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {"images_per_s": batch / seconds, "step_ms": 1000 * seconds,
            "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "dtype": str(dtype).replace("torch.", "") if dtype else "float32"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here: this benchmark measures GPU throughput (run it on Colab or any CUDA machine).")
        return 0
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    key = cost.gpu_name_to_key(name)
    if key is None and "H200" in name:   # an H100 with more memory: the same tensor-core peak
        key = "H100"
    peak = cost.GPUS[key]["peak_flops"] if key else None
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for w in workloads():
        flops_per_item = w["net"].flops("train")
        r = measure(w["net"], w["batch"], device, args.steps)
        achieved = flops_per_item * r["images_per_s"]
        rows.append({"notebook": w["notebook"], "what": w["what"], "batch": w["batch"], **r,
                     "gflop_per_image": flops_per_item / 1e9, "tflops": achieved / 1e12,
                     "mfu": achieved / peak if peak else None})
        torch.cuda.empty_cache()
    print(f"{name} ({key or 'not in lab_utils.cost.GPUS'}; dense peak "
          f"{peak / 1e12 if peak else float('nan'):.0f} TFLOP/s), {args.steps} timed steps each")
    print(f"{'notebook':<24} {'what':<44} {'batch':>5} {'img/s':>8} {'GFLOP/img':>9} {'TFLOP/s':>8} "
          f"{'MFU':>6} {'peak GB':>8} {'dtype':>9}")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "?"
        print(f"{r['notebook']:<24} {r['what'][:44]:<44} {r['batch']:>5} {r['images_per_s']:>8.0f} "
              f"{r['gflop_per_image']:>9.1f} {r['tflops']:>8.1f} {mfu:>6} {r['peak_gpu_gb']:>8.2f} {r['dtype']:>9}")
    if args.json:
        args.json.write_text(json.dumps({"gpu": name, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
