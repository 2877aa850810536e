"""Accuracy of a trained model under errorset's corruptions and under the reference's, on the same images.

    python benchmarks/corruption_reference_accuracy.py --checkpoint models/clean/model.pt \\
        --images 1000 --out benchmarks/results/corruption_reference_accuracy.json

Where our implementation differs from the reference by design (synthetic
frost instead of photographs, spatter's water shading, our motion blur
against the reference's own re-implementation of ImageMagick's), this shows
what the difference does to the number the benchmark reports: accuracy per
corruption and severity. Both sides use the ImageNet-C constants (the only
ones the reference has) on CIFAR-10 test images (``--cifar``, the shared
copy by default) and are quantised to 8 bits as the reference returns them.
Needs ``pip install imagecorruptions-imaug``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="a model.pt of a CIFAR-10 model")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--corruptions", nargs="+", default=None, help="default: all 19")
    p.add_argument("--cifar", type=Path, default=REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "corruption_reference_accuracy.json")
    args = p.parse_args(argv)

    from imagecorruptions import corrupt as reference

    from errorset.corruptions import ALL_CORRUPTIONS, corrupt
    from errorset.corruptions.formats import to_uint8
    from errorset.data.imagefolder import read_image_folder
    from errorset.models.build import load_model

    data = read_image_folder(args.cifar, name="cifar10", parameter="--cifar", progress=False)
    rng = np.random.default_rng(args.seed)
    keep = np.sort(rng.choice(len(data.x_test), args.images, replace=False))
    x_u8 = data.x_test[keep]
    y = torch.from_numpy(data.y_test[keep])
    model = load_model(args.checkpoint).eval()

    @torch.no_grad()
    def acc(u8: np.ndarray) -> float:
        x = torch.from_numpy(np.ascontiguousarray(u8)).float() / 255
        pred = torch.cat([model(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
        return float((pred == y).float().mean())

    result: dict = {"checkpoint": str(args.checkpoint), "images": args.images, "table": "imagenet"}
    result.update(clean=acc(x_u8), corruptions={})
    names = args.corruptions or list(ALL_CORRUPTIONS)
    x = torch.from_numpy(x_u8).float() / 255
    for name in names:
        row = {}
        for s in range(1, 6):
            t = time.perf_counter()
            np.random.seed(s)
            ref = np.stack([reference(im, s, name) for im in x_u8.transpose(0, 2, 3, 1)]).transpose(0, 3, 1, 2)
            ours = to_uint8(corrupt(x, name, s, "imagenet", torch.Generator().manual_seed(s))).numpy()
            row[str(s)] = {"reference": acc(ref), "errorset": acc(ours)}
            a, b = row[str(s)]["reference"], row[str(s)]["errorset"]
            print(f"{name:<18} {s}  reference {a:.4f}  errorset {b:.4f}  ({time.perf_counter() - t:.1f} s)", flush=True)
        mean_ref = float(np.mean([v["reference"] for v in row.values()]))
        mean_ours = float(np.mean([v["errorset"] for v in row.values()]))
        result["corruptions"][name] = {"severities": row, "reference": mean_ref, "errorset": mean_ours}
        result["corruptions"][name]["difference"] = mean_ours - mean_ref
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
