"""Training throughput of each training mode, in float32 and bf16 autocast, against the model's raw rate.

For each mode and precision, a few timed epochs of `errorset.train.train_epoch`
(batching, flips and crops, the mode's noise or PGD examples, the update) on
random uint8 images of the requested shape (throughput does not depend on
image content), and, on the same batches, the raw rate of the model alone:
forward, loss, backward and optimiser step on float batches already on the
device. A training step of a mode costs ``passes`` forward+backward passes
(1; PGD adds one per attack step), so

    pipeline_efficiency = training images/s x passes / raw images/s

is the share of the time spent in the model; the rest is the data pipeline
and the attack's bookkeeping outside the model (goal: efficiency >= 0.9).
Precisions and the raw rate are interleaved in each repeat, so a slower
moment of the machine hits all of them; the JSON has the median and the
spread over repeats.

    OMP_NUM_THREADS=2 python benchmarks/train_throughput.py --model resnet8 \
        --out benchmarks/results/train_throughput.json

Modes: clean, gaussian (sigma_max 0.4) and adversarial (the config's PGD: 7
steps, L-inf 8/255). Time on an idle machine: other busy processes slow torch
down many times over.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from errorset.jobs.train import training_transform
from errorset.models import create_model
from errorset.resolve import load_config
from errorset.runtime import cpu_has_native_bf16, make_generator, pick_device
from errorset.train import Precision, train_epoch


def passes_per_step(train_cfg) -> int:
    """Forward+backward passes of one training step: the update, plus one per PGD step."""
    return 1 + (train_cfg.adversarial.steps if train_cfg.mode == "adversarial" else 0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def raw_rate(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    precision: Precision,
    device: torch.device,
) -> float:
    """Images/s of forward, loss, backward and step alone, on float batches already on the device."""
    model.train()
    _sync(device)
    start = time.perf_counter()
    for xb, yb in batches:
        with precision.autocast(device):
            loss = F.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return sum(len(yb) for _, yb in batches) / (time.perf_counter() - start)


def measure_mode(
    model_name: str,
    shape: tuple[int, int, int],
    mode: str,
    precisions: dict[str, Precision],
    images: int,
    batch_size: int,
    device: torch.device,
    repeats: int,
) -> dict[str, object]:
    cfg = load_config(None, [f"train.mode={mode}", "train.sigma_max=0.4"]).train
    passes = passes_per_step(cfg)
    x = torch.randint(0, 256, (images, *shape), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (images,), device=device)
    float_batches = [(x[i : i + batch_size].float() / 255, y[i : i + batch_size]) for i in range(0, images, batch_size)]
    setups = {}
    for name, precision in precisions.items():
        torch.manual_seed(0)
        model = create_model(model_name, input_shape=shape, num_classes=10).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        kwargs = dict(
            transform=training_transform(cfg),
            batch_size=batch_size,
            data_generator=make_generator(1),
            noise_generator=make_generator(2, device),
            flip_crop=shape == (3, 32, 32),
            precision=precision,
        )
        train_epoch(model, opt, x[: 2 * batch_size], y[: 2 * batch_size], **kwargs)  # warm-up
        raw_rate(model, opt, float_batches[:2], precision, device)
        setups[name] = (model, opt, kwargs)
    train: dict[str, list[float]] = {name: [] for name in precisions}
    raw: dict[str, list[float]] = {name: [] for name in precisions}
    for _ in range(repeats):
        for name, (model, opt, kwargs) in setups.items():
            start = time.perf_counter()
            stats = train_epoch(model, opt, x, y, **kwargs)
            train[name].append(stats.images / (time.perf_counter() - start))
            raw[name].append(raw_rate(model, opt, float_batches, precisions[name], device))
    out: dict[str, object] = {"passes_per_step": passes}
    for name in precisions:
        t, r = statistics.median(train[name]), statistics.median(raw[name])
        out[name] = {
            "images_per_second": t,
            "images_per_second_range": [min(train[name]), max(train[name])],
            "raw_fwd_bwd_images_per_second": r,
            "raw_range": [min(raw[name]), max(raw[name])],
            "pipeline_efficiency": t * passes / r,
            "repeats": repeats,
        }
    if "float32" in precisions and "bf16" in precisions:
        out["bf16_speedup"] = out["bf16"]["images_per_second"] / out["float32"]["images_per_second"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet8")
    p.add_argument("--shape", default="3,32,32", help="C,H,W")
    p.add_argument("--images", type=int, default=2048, help="images per timed epoch")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default="clean,gaussian,adversarial")
    p.add_argument("--device", default="auto")
    p.add_argument("--precisions", default="float32,bf16", help="float32 and/or bf16 (autocast)")
    p.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = p.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
    torch.set_num_threads(threads)
    device = pick_device(args.device)
    shape = tuple(int(s) for s in args.shape.split(","))
    known = {"float32": Precision.for_device(device, False), "bf16": Precision.for_device(device, True)}
    precisions = {name: known[name] for name in args.precisions.split(",")}
    report = {
        "benchmark": "train_throughput",
        "command": (
            f"OMP_NUM_THREADS={threads} python benchmarks/train_throughput.py --model {args.model}"
            f" --images {args.images} --repeats {args.repeats}"
        ),
        "model": args.model,
        "input_shape": list(shape),
        "batch_size": args.batch_size,
        "images_per_epoch": args.images,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "precisions": {name: pr.name for name, pr in precisions.items()},
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "modes": {},
    }
    for mode in args.modes.split(","):
        res = measure_mode(args.model, shape, mode, precisions, args.images, args.batch_size, device, args.repeats)
        report["modes"][mode] = res
        for name in precisions:
            r = res[name]
            print(
                f"{mode:12s} {name:8s} {r['images_per_second']:8.1f} images/s"
                f"  raw {r['raw_fwd_bwd_images_per_second']:8.1f}  efficiency {r['pipeline_efficiency']:.2f}",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
