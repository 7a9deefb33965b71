"""isola._progress: the one progress line of Pool.map(progress=True),
Executor.map(progress=True) and `isola map`.

It is drawn on standard error (or the stream given) only when that is a
terminal, at most every `interval` seconds, as

    [#########                     ] 300/1000  1234/s  ETA 1s
    300 done  1234/s                       (the total unknown)

with "errors N" after it when the caller counts errors.
"""
import sys
import time

WIDTH = 30


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def format_line(done, total, elapsed, errors=None):
    """The text of the line (no carriage return) for `done` items of
    `total` (None: unknown) after `elapsed` seconds."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        filled = min(WIDTH, int(WIDTH * done / total))
        eta = (total - done) / rate if rate > 0 else 0
        line = (f"[{'#' * filled}{' ' * (WIDTH - filled)}] {done}/{total}"
                f"  {rate:.0f}/s  ETA {eta:.0f}s")
    else:
        line = f"{done} done  {rate:.0f}/s"
    if errors is not None:
        line += f"  errors {errors}"
    return line + " "


class ProgressLine:
    """A progress line on a terminal; does nothing when the stream is not
    one (enabled=False turns it off, True forces it)."""

    def __init__(self, total=None, stream=None, interval=0.1, enabled=None, t0=None):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _isatty(self.stream) if enabled is None else bool(enabled)
        self.total = total
        self.interval = interval
        self.t0 = time.monotonic() if t0 is None else t0
        self.last = float("-inf")  # the first update draws
        self.drawn = False

    def update(self, done, errors=None, final=False):
        """Redraw with `done` items finished (at most every interval,
        always when final; final ends the line)."""
        if not self.enabled:
            return
        t = time.monotonic()
        if not final and t - self.last < self.interval:
            return
        self.last = t
        text = "\r" + format_line(done, self.total, t - self.t0, errors)
        try:
            self.stream.write(text + ("\n" if final else ""))
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False  # the terminal went away: stop drawing
            return
        self.drawn = not final

    def clear(self):
        """End a line left drawn (before other output)."""
        if self.drawn:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self.drawn = False


def track(iterator, total, stream=None):
    """Yield from iterator, drawing the progress line as items come; the
    line is finished when the iterator is, and ended when it stops early."""
    bar = ProgressLine(total, stream)
    if not bar.enabled:
        yield from iterator
        return
    done = 0
    try:
        for item in iterator:
            done += 1
            bar.update(done)
            yield item
            del item  # keep no result alive after yielding it
        bar.update(done, final=True)
    finally:
        bar.clear()
