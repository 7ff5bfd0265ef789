"""Progress output: a tqdm bar only on a terminal; redirected output (log files, CI) gets
plain lines, never carriage returns."""
from __future__ import annotations

import sys

#: Epochs of at least this many mini-batches show progress within the epoch (on a terminal).
LONG_EPOCH_BATCHES = 50


def interactive(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal, where a bar can redraw its line."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def tqdm_bar(total: int, desc: str, unit: str, leave: bool = True):
    """A tqdm bar on stderr when it is a terminal and tqdm is installed, else None."""
    if not interactive():
        return None
    try:
        from tqdm import tqdm  # plain text: tqdm.auto needs ipywidgets in notebooks
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)


class BatchProgress:
    """Progress within one long epoch, as the core reports its mini-batches (``__call__`` is the
    core's on_batch callback): a tqdm bar, or without tqdm one line redrawn with a carriage
    return, and only on a terminal. :meth:`for_epoch` returns None where nothing is shown."""

    def __init__(self, batches: int, epoch: int):
        self.batches, self.epoch = batches, epoch
        self.bar = tqdm_bar(batches, f"epoch {epoch}", "batch", leave=False)
        self.step = max(1, batches // 100)  # redraw about 100 times per epoch without tqdm

    @classmethod
    def for_epoch(cls, rows: int, batch_size: int, epoch: int):
        batches = -(-rows // batch_size)
        if batches < LONG_EPOCH_BATCHES or not interactive():
            return None
        return cls(batches, epoch)

    def __call__(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif done % self.step == 0 or done == self.batches:
            print(f"\repoch {self.epoch}: {done}/{self.batches} batches", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            print("\r\033[K", end="", file=sys.stderr, flush=True)  # clear the line for the epoch's summary
