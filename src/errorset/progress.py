"""Progress bars on long loops that also honour a stop request at every step."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from errorset import interrupts

T = TypeVar("T")


def bar(iterable: Iterable[T], *, desc: str, enabled: bool = True, **tqdm_options: Any) -> Iterator[T]:
    """Iterate ``iterable`` with a tqdm bar (when ``enabled``), checking for a stop request before each item.

    Raises:
        errorset.interrupts.Interrupted: before the next item once SIGTERM or Ctrl-C was received.
    """
    from tqdm.auto import tqdm

    tqdm_options.setdefault("leave", False)
    for item in tqdm(iterable, desc=desc, disable=not enabled, **tqdm_options):
        interrupts.check()
        yield item


def counter(*, total: int, desc: str, enabled: bool = True, **tqdm_options: Any) -> Any:
    """A manually updated tqdm bar of ``total`` steps; its ``update`` checks for a stop request."""
    from tqdm.auto import tqdm

    class _CheckedBar(tqdm):  # type: ignore[misc,valid-type]
        def update(self, n: float | None = 1) -> bool | None:
            interrupts.check()
            return super().update(n)

    tqdm_options.setdefault("leave", False)
    return _CheckedBar(total=total, desc=desc, disable=not enabled, **tqdm_options)
