"""Training throughput (images per second) of each training mode on this machine.

Runs a few timed epochs of `errorset.train.train_epoch` per mode on random
uint8 images of the requested shape (throughput does not depend on image
content) and writes a JSON report:

    python benchmarks/train_throughput.py --model resnet8 --out benchmarks/results/train_throughput.json

Modes: clean, gaussian (sigma_max 0.4) and adversarial (PGD, 7 steps, L-inf 8/255).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from errorset.jobs.train import training_transform
from errorset.models import create_model
from errorset.resolve import load_config
from errorset.runtime import make_generator, pick_device
from errorset.train import Precision, train_epoch


def measure(
    model_name: str,
    shape: tuple[int, int, int],
    mode: str,
    images: int,
    batch_size: int,
    device: torch.device,
    amp: bool,
    repeats: int,
) -> dict[str, float]:
    cfg = load_config(None, [f"train.mode={mode}", "train.sigma_max=0.4"]).train
    torch.manual_seed(0)
    model = create_model(model_name, input_shape=shape, num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randint(0, 256, (images, *shape), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (images,), device=device)
    kwargs = dict(
        transform=training_transform(cfg),
        batch_size=batch_size,
        data_generator=make_generator(1),
        noise_generator=make_generator(2, device),
        flip_crop=shape == (3, 32, 32),
        precision=Precision.for_device(device, amp),
    )
    train_epoch(model, opt, x[: 2 * batch_size], y[: 2 * batch_size], **kwargs)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        stats = train_epoch(model, opt, x, y, **kwargs)
        rates.append(stats.images / (time.perf_counter() - start))
    rates.sort()
    return {"images_per_second": rates[len(rates) // 2], "min": rates[0], "max": rates[-1], "repeats": repeats}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet8")
    p.add_argument("--shape", default="3,32,32", help="C,H,W")
    p.add_argument("--images", type=int, default=2048, help="images per timed epoch")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default="clean,gaussian,adversarial")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    p.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = p.parse_args()

    device = pick_device(args.device)
    shape = tuple(int(s) for s in args.shape.split(","))
    report = {
        "benchmark": "train_throughput",
        "model": args.model,
        "input_shape": list(shape),
        "batch_size": args.batch_size,
        "images_per_epoch": args.images,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "amp": device.type == "cuda" and not args.no_amp,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "modes": {},
    }
    for mode in args.modes.split(","):
        report["modes"][mode] = measure(
            args.model, shape, mode, args.images, args.batch_size, device, not args.no_amp, args.repeats
        )
        print(f"{mode:12s} {report['modes'][mode]['images_per_second']:10.1f} images/s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
