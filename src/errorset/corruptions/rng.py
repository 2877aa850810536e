"""Random fields keyed by image index: corruptions that do not depend on the batch size or the device.

The random corruptions (noise, glass and motion blur, snow, frost, fog,
spatter, elastic transform) draw their randomness so that what image ``i`` of
a set gets depends only on the seed and on ``i``:

1. one 62-bit number ``s`` is drawn from the caller's ``torch.Generator``
   (one draw per :func:`~errorset.corruptions.corrupt` call, whatever the
   batch size; ``None`` draws from torch's global CPU generator);
2. images are grouped into fixed blocks of ``B`` consecutive indices in the
   whole set (``start_index + i``), where ``B`` depends only on how many
   numbers one image needs (a power of 2 of images holding at most 2^17
   numbers: 32 images of 32x32x3 noise, 1 image of 224x224x3);
   :func:`~errorset.corruptions.corrupt` cuts large batches into
   chunks at multiples of a larger power of 2, so chunks cover whole blocks;
3. block ``k`` of a random field (``stream``) is drawn in one call from a CPU
   ``torch.Generator`` seeded with ``splitmix64(s, corruption, severity,
   stream, k)``; a batch takes the rows of the blocks it overlaps and moves
   them to the images' device.

So corrupting ``x[:10]`` and ``x[:20][:10]`` with generators of the same seed
gives identical images, a set corrupted in chunks (each with its
``start_index``) equals the set corrupted at once, and CPU and GPU images get
the same random fields. A small batch pays for drawing whole blocks (at most
two blocks more than it needs).

We chose seeded blocks of CPU draws over a counter-based integer hash
evaluated in torch ops: on CPU, torch's vectorised Mersenne-Twister samplers
are several times faster than a 32-bit hash spelled out in int64 tensor
operations, and drawing on the CPU gives bit-identical fields on every
device. On a GPU this makes the draws (not the corruption arithmetic) the
bottleneck of the noise corruptions.

Pass a CPU generator (``torch.Generator()``, the default) for results that are
the same on every device; a CUDA generator is accepted, but its first draw
differs from a CPU generator's with the same seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import torch

_MASK64 = (1 << 64) - 1


def splitmix64(*values: int) -> int:
    """Mix integers into one well-spread 63-bit integer (SplitMix64's finaliser, chained).

    Pure integer arithmetic: the same on every platform.
    """
    z = 0x9E3779B97F4A7C15
    for v in values:
        z = (z ^ (int(v) & _MASK64)) & _MASK64
        z = (z + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
    return z >> 1


def salt_of(text: str) -> int:
    """A stable integer for a name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(text.encode())


def draw_seed(generator: torch.Generator | None) -> int:
    """One 62-bit number from ``generator`` (torch's global CPU generator when None)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())


#: numbers drawn per block of images (see the module docstring)
BLOCK_VALUES = 1 << 17
#: most images per block
MAX_BLOCK = 1024


def block_size(values_per_image: int) -> int:
    """Images per block for a field of ``values_per_image`` numbers per image: a power of 2."""
    b = max(1, min(MAX_BLOCK, BLOCK_VALUES // max(1, values_per_image)))
    return 1 << (b.bit_length() - 1)


class ImageRNG:
    """Random fields for images ``start_index ... start_index + n - 1`` of a set, under one key.

    Args:
        key: the call's key (mixes the generator's draw with the corruption and severity).
        n: images in the batch.
        start_index: index of the batch's first image in the whole set.
        device: where the drawn tensors are returned.
        dtype: floating dtype of the drawn tensors.
    """

    def __init__(
        self,
        key: int,
        n: int,
        start_index: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.key = int(key)
        self.n = int(n)
        self.start_index = int(start_index)
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def create(
        cls,
        n: int,
        seed: int,
        salt: str,
        *,
        start_index: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> ImageRNG:
        """Fields for ``n`` images numbered ``start_index ...`` under ``seed`` and ``salt`` (a name)."""
        return cls(splitmix64(seed, salt_of(salt)), n, start_index, device, dtype)

    def __len__(self) -> int:
        return self.n

    def _draw(
        self,
        shape: Sequence[int],
        stream: int,
        dtype: torch.dtype,
        fill: Callable[[torch.Tensor, torch.Generator], object],
    ) -> torch.Tensor:
        shape = tuple(int(s) for s in shape)
        per = 1
        for s in shape:
            per *= s
        b = block_size(per)
        first = self.start_index // b
        last = (self.start_index + self.n - 1) // b
        out = torch.empty(((last - first + 1) * b, *shape), dtype=dtype)
        for k in range(last - first + 1):
            g = torch.Generator().manual_seed(splitmix64(self.key, stream, first + k))
            fill(out[k * b : (k + 1) * b], g)
        lo = self.start_index - first * b
        return out[lo : lo + self.n].to(self.device)

    def uniform(
        self, shape: Sequence[int], stream: int, low: float = 0.0, high: float = 1.0, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """(N, *shape) independent U(low, high) draws; image i's depend only on the key, ``stream`` and its index.

        ``dtype`` (default: the images' working dtype) fixes the draws' precision
        where they must not depend on the images' dtype.
        """
        return self._draw(shape, stream, dtype or self.dtype, lambda t, g: t.uniform_(low, high, generator=g))

    def normal(self, shape: Sequence[int], stream: int, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        """(N, *shape) independent N(mean, std^2) draws."""
        return self._draw(shape, stream, self.dtype, lambda t, g: t.normal_(mean, std, generator=g))

    def integers(self, low: int, high: int, shape: Sequence[int], stream: int) -> torch.Tensor:
        """(N, *shape) independent integers uniform in [low, high) (int64; ranges below 2^20).

        Drawn as ``low + floor(u * (high - low))`` from float uniforms (torch's
        integer sampler is several times slower per number): float32 ones
        (24 random bits) for ranges up to 2^12, float64 ones above. Either
        way the draws do not depend on the images' dtype.
        """
        span = high - low
        if not 0 < span < 1 << 20:
            raise ValueError(f"integers: range [{low}, {high}) is empty or too large")
        dtype = torch.float32 if span <= 1 << 12 else torch.float64
        u = self._draw(shape, stream, dtype, lambda t, g: t.uniform_(0.0, 1.0, generator=g))
        return uniform_to_integers(u, low, high)


def uniform_to_integers(u: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """``low + floor(u * (high - low))`` as int64 for uniforms ``u`` in [0, 1) (overwrites ``u``)."""
    span = high - low
    return u.mul_(span).floor_().clamp_(max=span - 1).to(torch.int64) + low
