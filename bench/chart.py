#!/usr/bin/env python3
"""chart: a horizontal bar chart as SVG, one panel per workload, standard
library only.

usage: chart.py DATA.json OUT.svg

DATA.json (written by runner.py):
  {"title": "...", "panels": [{"title": "...", "bars": [["name", value], ...]}]}

Each panel has its own scale (a 16 KiB workload runs at a fraction of the
64 B rate), starts at zero, and prints the value at the end of each bar.
"""
import json
import sys
from xml.sax.saxutils import escape

WIDTH = 860
LABEL_W = 150
VALUE_W = 90
BAR_H = 18
GAP = 5
PANEL_GAP = 34
COLORS = {"sb ": "#2b6cb0", "bare_epoll": "#555555"}
OTHER = "#b7791f"


def color(name):
    for prefix, c in COLORS.items():
        if name.startswith(prefix):
            return c
    return OTHER


def human(v):
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e3:
        return "%.1fk" % (v / 1e3)
    return "%.0f" % v


def panel(out, y, p):
    bars = p["bars"]
    top = max([v for _, v in bars] + [1])
    span = WIDTH - LABEL_W - VALUE_W - 20
    out.append('<text x="10" y="%d" class="h">%s</text>' % (y + 14, escape(p["title"])))
    y += 24
    for name, v in bars:
        w = max(1, int(span * v / top))
        out.append('<text x="%d" y="%d" class="l" text-anchor="end">%s</text>'
                   % (LABEL_W, y + BAR_H - 5, escape(name)))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>'
                   % (LABEL_W + 8, y, w, BAR_H, color(name)))
        out.append('<text x="%d" y="%d" class="v">%s</text>'
                   % (LABEL_W + 12 + w, y + BAR_H - 5, human(v)))
        y += BAR_H + GAP
    if not bars:
        out.append('<text x="%d" y="%d" class="l">no data</text>' % (LABEL_W + 8, y + 13))
        y += BAR_H + GAP
    return y + PANEL_GAP - GAP


def render(data):
    body = []
    y = panel_y = 40
    for p in data["panels"]:
        y = panel(body, y, p)
    head = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">'
        % (WIDTH, y, WIDTH, y),
        "<style>text{font-family:sans-serif;font-size:12px;fill:#222}"
        ".t{font-size:16px;font-weight:bold}.h{font-size:13px;font-weight:bold}"
        ".v{fill:#444}</style>",
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="%d" class="t">%s</text>' % (panel_y - 14, escape(data.get("title", ""))),
    ]
    return "\n".join(head + body + ["</svg>"]) + "\n"


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: chart.py DATA.json OUT.svg\n")
        return 2
    with open(argv[1]) as f:
        data = json.load(f)
    with open(argv[2], "w") as f:
        f.write(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
