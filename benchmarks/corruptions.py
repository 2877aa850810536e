"""Images per second of every corruption: errorset (CPU, and GPU when there is one) against the reference.

    python benchmarks/corruptions.py --out benchmarks/results/corruptions.json

For each image size (32x32 and 224x224 by default) and each of the 19
corruptions, times all 5 severities on one batch with errorset's batched
torch code, and on a few images, one by one, with the reference package
``imagecorruptions`` (``pip install imagecorruptions-imaug``) when it is
installed. Both use the ImageNet-C constants (the reference has no others).
Writes a JSON file with images/s per corruption, the ratios, and the whole
suite's throughput (images/s for one image through all 19 corruptions,
i.e. ``1 / sum(1 / images_per_second)``) and ratio.

Both run in one process with glibc's malloc keeping freed memory
(:func:`errorset.allocator.keep_freed_memory`, what the ``errorset`` command
does; ``--default-malloc`` measures without it), and with every library's
thread pool limited to ``--threads``; each corruption is timed in several
rounds spread over the run and the best round kept, for both sides.

Images: the real CIFAR-10 copy (``--cifar``, default ``../shared/datasets/cifar10-jpeg.tar.gz``)
when it exists, upsampled with a box filter to the larger sizes; else
smooth random images (the timings barely depend on the content).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CIFAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def load_images(n: int, size: int, cifar: Path, seed: int = 0) -> np.ndarray:
    """``n`` uint8 (n, size, size, 3) images: CIFAR-10 test images (resized), else smooth noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    if cifar.is_file():
        images = []
        with tarfile.open(cifar) as tf:
            for m in tf:
                if m.isfile() and m.name.startswith("test/") and m.name.endswith(".jpg"):
                    f = tf.extractfile(m)
                    assert f is not None
                    images.append(Image.open(io.BytesIO(f.read())).convert("RGB"))
                    if len(images) >= n:
                        break
        out = [np.asarray(im.resize((size, size), Image.BOX) if size != 32 else im) for im in images]
        return np.stack(out)
    base = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(b).resize((size, size), Image.BICUBIC)) for b in base])


def ours_runner(x: torch.Tensor, name: str) -> Callable[[], float]:
    """A function timing one pass of errorset's ``corrupt`` over severities 1-5 on the batch ``x`` (seconds)."""
    from errorset.corruptions import corrupt

    def run(batch: torch.Tensor) -> None:
        for s in range(1, 6):
            corrupt(batch, name, s, "imagenet", torch.Generator().manual_seed(s))
        if batch.device.type == "cuda":
            torch.cuda.synchronize()

    run(x[:4])  # warm-up: cached matrices, kernels

    def timed() -> float:
        t = time.perf_counter()
        run(x)
        return time.perf_counter() - t

    return timed


def reference_runner(images: np.ndarray, name: str) -> Callable[[], float]:
    """A function timing one pass of ``imagecorruptions.corrupt`` over severities 1-5, image by image (seconds)."""
    from imagecorruptions import corrupt as reference

    np.random.seed(0)
    reference(images[0], 1, name)  # warm-up (numba compiles glass blur)

    def timed() -> float:
        t = time.perf_counter()
        for s in range(1, 6):
            for im in images:
                reference(im, s, name)
        return time.perf_counter() - t

    return timed


def best_over_rounds(runners: dict[tuple[str, str], Callable[[], float]], rounds: dict[str, int]) -> dict:
    """Best time of every runner over rounds that visit all runners in turn.

    Timing each corruption in several rounds spread over the whole run, rather
    than several times in a row, keeps a slow spell of a shared machine from
    deciding one corruption's number; ours and the reference's get the same treatment.
    """
    best = {key: float("inf") for key in runners}
    sides = list(dict.fromkeys(side for _, side in runners))
    for r in range(max(rounds.values())):
        for side in sides:  # one side's runs back to back: neither warms up after the other's
            for key, run in runners.items():
                if key[1] == side and r < rounds[side]:
                    best[key] = min(best[key], run())
    return best


def limit_library_threads(threads: int) -> None:
    """Give every thread pool loaded so far (NumPy's and SciPy's OpenBLAS, OpenMP, OpenCV) ``threads`` threads.

    The reference's libraries otherwise start pools of one thread per core
    whose workers keep spinning after each call: on a small machine they take
    the core from whichever code is timed next (up to 1.5x slower on 2 cores).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass


def suite(ips: dict[str, float]) -> float:
    """Images per second of one image through every corruption: 1 / sum of seconds per image."""
    return 1.0 / sum(1.0 / v for v in ips.values())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    p.add_argument("--images", type=int, nargs="+", default=[512, 16], help="batch size for errorset, per size")
    p.add_argument("--ref-images", type=int, nargs="+", default=[40, 4], help="images for the reference, per size")
    p.add_argument("--repeats", type=int, default=5, help="rounds timing errorset on every corruption (best kept)")
    p.add_argument(
        "--ref-repeats", type=int, default=3, help="rounds timing the reference on every corruption (best kept)"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: one core, as the reference uses)"
    )
    p.add_argument("--corruptions", nargs="+", default=None, help="subset of corruptions (default: all 19)")
    p.add_argument("--no-reference", action="store_true", help="skip the reference package")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc as it is (default: errorset.allocator.keep_freed_memory(), as the CLI does)",
    )
    p.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "corruptions.json")
    args = p.parse_args(argv)

    from errorset.allocator import keep_freed_memory
    from errorset.corruptions import ALL_CORRUPTIONS

    kept = False if args.default_malloc else keep_freed_memory()  # for ours and the reference alike
    torch.set_num_threads(args.threads)
    names = args.corruptions or list(ALL_CORRUPTIONS)
    try:
        import imagecorruptions  # noqa: F401

        have_reference = not args.no_reference
    except ImportError:
        have_reference = False
    limit_library_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict[str, Any] = {
        "command": "python benchmarks/corruptions.py " + " ".join(argv or []),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "library_threads": args.threads,
            "keep_freed_memory": kept,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
        },
        "table": "imagenet",
        "severities": [1, 2, 3, 4, 5],
        "sizes": {},
    }
    for i, size in enumerate(args.sizes):
        n = args.images[min(i, len(args.images) - 1)]
        n_ref = args.ref_images[min(i, len(args.ref_images) - 1)]
        images = load_images(max(n, n_ref), size, args.cifar)
        x_cpu = torch.from_numpy(images[:n]).permute(0, 3, 1, 2).float().div(255).contiguous()
        entry: dict[str, Any] = {"batch": n, "reference_images": n_ref if have_reference else 0, "corruptions": {}}
        runners: dict[tuple[str, str], Callable[[], float]] = {}
        for name in names:
            for dev in devices:
                runners[(name, f"errorset_{dev}")] = ours_runner(x_cpu.to(dev), name)
            if have_reference:
                runners[(name, "reference")] = reference_runner(images[:n_ref], name)
        rounds = {f"errorset_{dev}": args.repeats for dev in devices} | {"reference": args.ref_repeats}
        best = best_over_rounds(runners, rounds)
        for name in names:
            row: dict[str, float] = {}
            for dev in devices:
                row[f"errorset_{dev}"] = 5 * n / best[(name, f"errorset_{dev}")]
            if have_reference:
                row["reference"] = 5 * n_ref / best[(name, "reference")]
                for dev in devices:
                    row[f"ratio_{dev}"] = row[f"errorset_{dev}"] / row["reference"]
            entry["corruptions"][name] = row
            print(f"{size:>4} {name:<18} " + "  ".join(f"{k} {v:9.1f}" for k, v in row.items()), flush=True)
        whole: dict[str, float] = {}
        for dev in devices:
            whole[f"errorset_{dev}"] = suite({k: v[f"errorset_{dev}"] for k, v in entry["corruptions"].items()})
        if have_reference:
            whole["reference"] = suite({k: v["reference"] for k, v in entry["corruptions"].items()})
            for dev in devices:
                whole[f"ratio_{dev}"] = whole[f"errorset_{dev}"] / whole["reference"]
        entry["suite"] = whole
        print(f"{size:>4} {'whole suite':<18} " + "  ".join(f"{k} {v:9.2f}" for k, v in whole.items()), flush=True)
        result["sizes"][str(size)] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
