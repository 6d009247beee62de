"""Progress bars: one factory for every bar Foundation draws (training, MD, downloads, conversion,
labelling).

On a terminal it is tqdm's bar, redrawn in place. Anywhere else (a pipe, a log file, a batch
job's output) a bar redrawn with carriage returns turns into one endless line, so there the bar
prints a whole line each time another tenth of the total is done, and where it stopped; without
a known total, a line every `LINE_INTERVAL_S` seconds. No progress, no line.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

LINE_INTERVAL_S = 30.0


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar on stderr (or `file=`); `enabled=False` gives one that shows nothing. Other
    keyword arguments are tqdm's (total, desc, unit, initial, ...)."""
    stream = kwargs.pop("file", None) or sys.stderr
    if not enabled:
        return tqdm(iterable, disable=True, file=stream, **kwargs)
    if _is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.pop("dynamic_ncols", None)  # no terminal to measure
    return _LineBar(iterable, file=_WholeLines(stream), **kwargs)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _LineBar(tqdm):
    """tqdm that writes its state as a whole line at each tenth of the total (or every
    `LINE_INTERVAL_S` without a total), and at the end; never a carriage return."""

    def __init__(self, *args, **kwargs):
        self._started = False
        super().__init__(*args, **kwargs)
        # Nothing until there is progress: a command that fails on its input prints only its error.
        self._tenth, self._shown_n, self._shown_t = self._tenth_done(), self.n, time.monotonic()
        self._started = True

    def display(self, msg=None, pos=None) -> bool:
        if self._started and msg is None and self._due():
            self._line()
        return True

    def close(self) -> None:
        if not self.disable and self.n != self._shown_n:
            self._line()  # where it stopped, complete or not
        super().close()

    def _due(self) -> bool:
        if self.total:
            return self._tenth_done() > self._tenth
        return self.n != self._shown_n and time.monotonic() - self._shown_t >= LINE_INTERVAL_S

    def _tenth_done(self) -> int:
        return min(10, int(10 * self.n / self.total)) if self.total else -1

    def _line(self) -> None:
        self._tenth, self._shown_n, self._shown_t = self._tenth_done(), self.n, time.monotonic()
        self.fp.write(str(self).strip() + "\n")
        self.fp.flush()


class _WholeLines:
    """A stream that passes the bar's lines and drops the carriage returns and blank writes with
    which tqdm clears and ends a bar."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "")
        if text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
