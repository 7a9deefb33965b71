"""svgplot: the few charts the benchmark report needs, written as SVG by
hand (no matplotlib: any Python 3 draws them, nothing to install, and the
files diff as text).  Used by bench/plot.py."""
import html
import math

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
           "#edc948", "#9c755f"]


def _fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _ticks(lo, hi, log):
    if log:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [10.0 ** k for k in range(a, b + 1)]
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / 5)) if span > 0 else 1
    for m in (1, 2, 5, 10):
        if span / (step * m) <= 6:
            step *= m
            break
    start = math.floor(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _wrap(text, width):
    """text in lines of at most width characters (at spaces)."""
    lines, cur = [], ""
    for word in text.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return lines + ([cur] if cur else [])


class Chart:
    def __init__(self, title, ylabel, width=640, height=360, log=False):
        self.title, self.ylabel, self.w, self.h, self.log = title, ylabel, width, height, log
        self.left, self.right, self.top, self.bottom = 70, 20, 40, 70
        self.parts = []

    def _y(self, v, lo, hi):
        ph = self.h - self.top - self.bottom
        if self.log:
            f = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            f = (v - lo) / (hi - lo) if hi > lo else 0
        return self.h - self.bottom - f * ph

    def _frame(self, lo, hi):
        p = self.parts
        p.append(f'<text x="{self.w / 2}" y="22" text-anchor="middle" font-size="14" '
                 f'font-weight="bold">{html.escape(self.title)}</text>')
        p.append(f'<text x="16" y="{(self.top + self.h - self.bottom) / 2}" font-size="11" '
                 f'text-anchor="middle" transform="rotate(-90 16 '
                 f'{(self.top + self.h - self.bottom) / 2})">{html.escape(self.ylabel)}</text>')
        for t in _ticks(lo, hi, self.log):
            if not lo <= t <= hi * 1.0000001:
                continue
            y = self._y(t, lo, hi)
            p.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.w - self.right}" '
                     f'y2="{y:.1f}" stroke="#e0e0e0"/>')
            p.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{_fmt(t)}</text>')
        p.append(f'<line x1="{self.left}" y1="{self.h - self.bottom}" x2="{self.w - self.right}" '
                 f'y2="{self.h - self.bottom}" stroke="black"/>')

    def _range(self, values, zero=True):
        vals = [v for v in values if v is not None and (v > 0 or not self.log)]
        lo, hi = min(vals), max(vals)
        if self.log:
            return 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
        lo = 0 if zero else lo
        return lo, hi * 1.12 if hi > 0 else 1

    def _legend(self, names, y):
        x = self.left
        for i, name in enumerate(names):
            self.parts.append(f'<rect x="{x}" y="{y}" width="11" height="11" '
                              f'fill="{PALETTE[i % len(PALETTE)]}"/>')
            self.parts.append(f'<text x="{x + 15}" y="{y + 10}" font-size="11">'
                              f'{html.escape(name)}</text>')
            x += 24 + 7 * len(name)

    def _note(self, note):
        """A note under the chart, wrapped to its width (the chart grows)."""
        if not note:
            return
        lines = _wrap(note, int((self.w - self.left) / 5.6))
        y = self.h - 10
        self.h += 13 * (len(lines) - 1)
        for line in lines:
            self.parts.append(f'<text x="{self.left}" y="{y}" font-size="10" '
                              f'fill="#555">{html.escape(line)}</text>')
            y += 13

    def bars(self, groups, series, values, note=None):
        """Grouped bars: values[series][group] (None: missing)."""
        lo, hi = self._range([v for s in series for v in values[s].values()])
        self._frame(lo, hi)
        pw = self.w - self.left - self.right
        gw = pw / len(groups)
        bw = gw * 0.8 / len(series)
        for gi, g in enumerate(groups):
            x0 = self.left + gi * gw + gw * 0.1
            for si, s in enumerate(series):
                v = values[s].get(g)
                if v is None or (self.log and v <= 0):
                    continue
                y = self._y(v, lo, hi)
                x = x0 + si * bw
                self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" '
                                  f'height="{self.h - self.bottom - y:.1f}" '
                                  f'fill="{PALETTE[si % len(PALETTE)]}"><title>{html.escape(s)} '
                                  f'{html.escape(str(g))}: {v:.4g}</title></rect>')
                self.parts.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{y - 3:.1f}" '
                                  f'text-anchor="middle" font-size="9">{_fmt(float(f"{v:.3g}"))}'
                                  '</text>')
            self.parts.append(f'<text x="{x0 + gw * 0.4:.1f}" y="{self.h - self.bottom + 15}" '
                              f'text-anchor="middle" font-size="11">{html.escape(str(g))}</text>')
        if len(series) > 1:
            self._legend(series, self.h - self.bottom + 28)
        self._note(note)
        return self

    def lines(self, xs, series, values, ideal=None, xlabel="", note=None):
        """Lines: values[series][x]; ideal: a dashed y = x line."""
        allv = [v for s in series for v in values[s].values()]
        if ideal:
            allv += list(xs)
        lo, hi = self._range(allv)
        self._frame(lo, hi)
        pw = self.w - self.left - self.right
        xpos = {x: self.left + (i + 0.5) * pw / len(xs) for i, x in enumerate(xs)}
        if ideal:
            pts = " ".join(f"{xpos[x]:.1f},{self._y(x, lo, hi):.1f}" for x in xs)
            self.parts.append(f'<polyline points="{pts}" fill="none" stroke="#999" '
                              'stroke-dasharray="5,4"/>')
        for si, s in enumerate(series):
            c = PALETTE[si % len(PALETTE)]
            pts = [(xpos[x], self._y(values[s][x], lo, hi)) for x in xs if x in values[s]]
            self.parts.append('<polyline points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
                              + f'" fill="none" stroke="{c}" stroke-width="2"/>')
            for a, b in pts:
                self.parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{c}"/>')
        for x in xs:
            self.parts.append(f'<text x="{xpos[x]:.1f}" y="{self.h - self.bottom + 15}" '
                              f'text-anchor="middle" font-size="11">{x}</text>')
        self.parts.append(f'<text x="{self.w / 2}" y="{self.h - self.bottom + 28}" '
                          f'text-anchor="middle" font-size="11">{html.escape(xlabel)}</text>')
        self._legend(series, self.h - self.bottom + 36)
        self._note(note)
        return self

    def svg(self):
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="sans-serif">\n'
                f'<rect width="{self.w}" height="{self.h}" fill="white"/>\n'
                + "\n".join(self.parts) + "\n</svg>\n")
