"""What a Pd patch looks like on screen, computed from its file: the rectangle
of every box, comment and label, the line of every cord, and the size of every
window, as Pd 0.53 draws them; and the three ways a patch reads badly: boxes
over one another, cords across boxes or comments, windows larger than a
1024x768 screen.

The sizes follow Pd's own code. Text boxes (g_rtext.c, rtext_formattext):
the text is the box's atoms as binbuf_gettext writes them (a space between
atoms, none before ',' and ';', a line break after ';'), wrapped at the box's
width in characters (", f N" in the file; 60 when unset) at the last space,
then `columns * font_width + 4` wide and `lines * font_height + 5` high
(comments: 2 px less, starting 1 px lower: text_getrect in g_text.c). The
font size in characters is the worst case Pd assumes (sys_fontspec in
s_main.c: a 12-point font is 7x16, 10 is 6x13, 16 is 10x19...). Number and
symbol boxes are `width * font_width + 2` by `font_height + 4`. The IEM GUIs
use their own sizes (bng and tgl: SIZE square; sliders: their two sizes plus
the margins of g_slider.c; radios: SIZE times the count; cnv: its visible
size, a background that may hold other boxes but no cord); their labels are
text of the label's pixel size, about 0.6 of it wide per character, left at
the label offset and centred on it vertically. A graph-on-parent subpatch or
abstraction (of the patch's own folder) is the size its `#X coords` give.

A cord runs from outlet to inlet as canvas_drawlines places it:
`x1 + (width - 7) * n / (count - 1) + 3`. The inlet and outlet counts come
from a table of the vanilla objects the patches use, from an abstraction's
own [inlet] and [outlet] objects, else from the highest one the patch uses.
"""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

# sys_fontspec of Pd 0.53 (s_main.c): point size -> (width, height) in pixels.
FONTSPEC = [(8, 5, 11), (10, 6, 13), (12, 7, 16), (16, 10, 19), (24, 14, 29), (36, 22, 44)]
SCREEN = (1024, 768)
# A window's size in the file includes Pd's menu bar; this much of it is not canvas.
MENU_BAR = 30
DEFAULT_WRAP = 60
IOWIDTH, IOMIDDLE = 7, 3


def font_metrics(size):
    """sys_findfont: the largest spec size not above `size` (the smallest for less)."""
    chosen = FONTSPEC[0]
    for spec in FONTSPEC:
        if size >= spec[0]:
            chosen = spec
    return chosen[1], chosen[2]


# --- reading the file -------------------------------------------------------------

def records(text):
    """The file's records (split at unescaped ';'), each a list of tokens with their escapes."""
    out, tokens, token, i = [], [], "", 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            token += text[i:i + 2]
            i += 2
            continue
        if c == ";":
            if token:
                tokens.append(token)
            out.append(tokens)
            tokens, token = [], ""
        elif c.isspace():
            if token:
                tokens.append(token)
            token = ""
        elif c == ",":
            if token:
                tokens.append(token)
            tokens.append(",")   # an unescaped comma: the ", f N" width suffix
            token = ""
        else:
            token += c
        i += 1
    return out


def split_width(tokens):
    """Atoms and the ', f N' width (0 when none)."""
    if len(tokens) >= 3 and tokens[-3] == "," and tokens[-2] == "f":
        return tokens[:-3], int(float(tokens[-1]))
    return tokens, 0


def display_atom(token):
    if token in ("\\,", "\\;"):
        return token[1]
    try:
        value = float(token)
    except ValueError:
        return token.replace("\\$", "$")
    if math.isfinite(value) and not re.fullmatch(r"[-+]?(inf|nan)", token, re.IGNORECASE):
        text = f"{value:g}"
        return text
    return token


def box_text(tokens):
    """binbuf_gettext: atoms joined by spaces, none before ',' or ';', a line break after ';'."""
    text = ""
    for token in tokens:
        atom = display_atom(token)
        if atom in (",", ";") and text.endswith(" "):
            text = text[:-1]
        text += atom + ("\n" if atom == ";" else " ")
    return text.rstrip(" ")


def wrap(text, limit):
    """rtext_formattext's line breaking; returns (lines, widest line in characters)."""
    lines, columns, i = 0, 0, 0
    while i < len(text):
        rest = text[i:]
        window = rest[:limit]
        newline = window.find("\n")
        if newline >= 0:
            take, eat = newline, 1
        elif len(rest) > limit:
            space = rest[:limit + 1].rfind(" ")
            take, eat = (space, 1) if space >= 0 else (limit, 0)
        else:
            take, eat = len(rest), 0
        columns = max(columns, take)
        i += take + eat
        lines += 1
    return max(lines, 1), columns


# --- the model --------------------------------------------------------------------

@dataclass
class Box:
    index: int
    kind: str          # obj msg text atom gui cnv graph label
    text: str
    rect: tuple        # x1 y1 x2 y2
    inlets: int = 1
    outlets: int = 1
    owner: int = -1    # for a label: the index of its box


@dataclass
class Canvas:
    name: str
    window: tuple      # x y w h
    font: int
    boxes: list = field(default_factory=list)     # in object order (cord indices)
    labels: list = field(default_factory=list)
    cords: list = field(default_factory=list)     # (source, outlet, sink, inlet)
    coords: list = None
    children: list = field(default_factory=list)
    open: bool = True

    def all_boxes(self):
        return [b for b in self.boxes if b is not None] + self.labels


@dataclass
class Patch:
    path: Path
    canvases: list


def _num(token, default=0):
    try:
        return float(token)
    except (TypeError, ValueError):
        return default


def _label_text(token):
    return "" if token in ("empty", "-", "") else token.replace("\\ ", " ").replace("\\$", "$")


VANILLA_IO = {
    "inlet": (0, 1), "inlet~": (0, 1), "outlet": (1, 0), "outlet~": (1, 0),
    "print": (1, 0), "loadbang": (0, 1), "dac~": None, "adc~": None, "declare": (0, 0), "table": (0, 0),
    "bang": (1, 1), "b": (1, 1), "f": (2, 1), "float": (2, 1), "i": (2, 1), "int": (2, 1),
    "symbol": (2, 1), "change": (1, 1), "spigot": (2, 1), "moses": (2, 2), "clip": (3, 1),
    "until": (2, 1), "makefilename": (1, 1), "openpanel": (1, 1), "savepanel": (1, 1),
    "soundfiler": (1, 2), "tabplay~": (1, 2), "tabread4~": (2, 1), "throw~": (1, 0), "catch~": (1, 1),
    "pdcontrol": (1, 1), "osc~": (2, 1), "phasor~": (2, 1), "line~": (2, 1), "vline~": (3, 1),
    "+": (2, 1), "-": (2, 1), "*": (2, 1), "/": (2, 1), "min": (2, 1), "max": (2, 1), "mod": (2, 1),
    "div": (2, 1), "==": (2, 1), "!=": (2, 1), ">": (2, 1), "<": (2, 1), ">=": (2, 1), "<=": (2, 1),
    "*~": (2, 1), "+~": (2, 1), "-~": (2, 1), "/~": (2, 1), "sig~": (1, 1), "snapshot~": (1, 1),
    "ganspacesynth~": (1, 2), "metro": (2, 1), "delay": (2, 1), "del": (2, 1), "line": (3, 1),
    "s~": (1, 0), "send~": (1, 0), "r~": (1, 1), "receive~": (1, 1), "realtime": (2, 1),
    "dbtorms": (1, 1), "mtof": (1, 1), "ftom": (1, 1), "abs": (1, 1), "random": (2, 1),
}


def io_counts(name, args, abstractions):
    """(inlets, outlets) of an object, or None when unknown."""
    n = len(args)
    if name in abstractions:
        return abstractions[name]["io"]
    if name in ("s", "send"):
        return (1, 0) if n else (2, 0)
    if name in ("r", "receive"):
        return (0, 1) if n else (1, 1)
    if name in ("v", "value"):
        return (1, 1) if n else (2, 1)
    if name in ("t", "trigger"):
        return (1, n or 2)
    if name in ("sel", "select", "route"):
        k = max(n, 1)
        return (2 if k == 1 else 1, k + 1)
    if name == "unpack":
        return (1, n or 2)
    if name == "pack":
        return (n or 2, 1)
    if name in ("dac~",):
        return (n or 2, 0)
    if name == "list":
        sub = args[0] if args and not _is_number(args[0]) else "append"
        return {"append": (2, 1), "prepend": (2, 1), "split": (2, 3), "trim": (1, 1), "length": (1, 1),
                "fromsymbol": (1, 1), "tosymbol": (1, 1), "store": (2, 2), "cat": (1, 1)}.get(sub)
    if name == "expr":
        body = " ".join(args)
        ins = max([int(m) for m in re.findall(r"\$[fis](\d+)", body)] or [1])
        return (ins, body.count("\\;") + 1)
    if name in ("text", "array"):
        sub = args[0] if args else "define"
        return {"define": (1, 1), "get": (2, 1), "set": (3, 0), "size": (1, 1), "insert": (3, 0),
                "delete": (2, 0), "tolist": (1, 1), "fromlist": (1, 0), "search": (2, 1),
                "sequence": (2, 3)}.get(sub)
    return VANILLA_IO.get(name)


def _is_number(token):
    try:
        float(token)
        return True
    except ValueError:
        return False


def text_rect(x, y, tokens, width, fw, fh, comment=False):
    text = box_text(tokens)
    lines, columns = wrap(text, width or DEFAULT_WRAP)
    if width:
        columns = width
    else:
        columns = max(columns, 1 if comment else 3)
    w, h = columns * fw + 4, lines * fh + 5
    if comment:
        return text, (x, y + 1, x + w, y + h - 2)
    return text, (x, y, x + w, y + h)


def gui_rect(name, x, y, args, fw, fh):
    """Rectangle and (label text, label x, label y, label size) of an IEM GUI, or None."""
    a = args
    if name in ("bng", "tgl"):
        size = _num(a[0], 15) if a else 15
        rect = (x, y, x + size, y + size)
        label = (a[6], a[7], a[8], a[10]) if name == "bng" and len(a) > 10 else \
                (a[4], a[5], a[6], a[8]) if name == "tgl" and len(a) > 8 else None
    elif name in ("hsl", "hslider", "vsl", "vslider"):
        w, h = (_num(a[0], 128), _num(a[1], 15)) if len(a) > 1 else ((128, 15) if name[0] == "h" else (15, 128))
        if name[0] == "h":
            rect = (x - 3, y, x + w + 2, y + h)
        else:
            rect = (x, y - 2, x + w, y + h + 3)
        label = (a[8], a[9], a[10], a[12]) if len(a) > 12 else None
    elif name in ("hradio", "vradio", "hdl", "vdl"):
        size, number = (_num(a[0], 15), int(_num(a[3], 8))) if len(a) > 3 else (15, 8)
        rect = (x, y, x + size * number, y + size) if name[0] == "h" else (x, y, x + size, y + size * number)
        label = (a[6], a[7], a[8], a[10]) if len(a) > 10 else None
    elif name in ("nbx", "my_numbox"):
        digits, h = (_num(a[0], 5), _num(a[1], 14)) if len(a) > 1 else (5, 14)
        fs = _num(a[12], 10) if len(a) > 12 else 10
        w = int(fs * 31 * digits) // 36 + int(h / 2) + 4
        rect = (x, y, x + w, y + h)
        label = (a[8], a[9], a[10], a[12]) if len(a) > 12 else None
    elif name in ("cnv", "my_canvas"):
        w, h = (_num(a[1], 100), _num(a[2], 60)) if len(a) > 2 else (100, 60)
        rect = (x, y, x + w, y + h)
        label = (a[5], a[6], a[7], a[9]) if len(a) > 9 else None
    elif name in ("vu",):
        w, h = (_num(a[0], 15), _num(a[1], 120)) if len(a) > 1 else (15, 120)
        rect = (x, y, x + w, y + h)
        label = None
    else:
        return None
    if label is not None:
        text = _label_text(label[0])
        if text:
            size = _num(label[3], 10)
            lx, ly = x + _num(label[1]), y + _num(label[2])
            cw = math.ceil(0.6 * size)
            label = (text, (lx, ly - size / 2, lx + cw * len(text), ly + size / 2))
        else:
            label = None
    return rect, label


def read_abstraction(path):
    """What a parent needs of an abstraction: its inlet/outlet counts and GOP size."""
    recs = records(Path(path).read_text())
    depth, ins, outs, coords = 0, 0, 0, None
    for rec in recs:
        if not rec:
            continue
        if rec[0] == "#N" and rec[1:2] == ["canvas"]:
            depth += 1
        elif rec[:2] == ["#X", "restore"]:
            depth -= 1
        elif depth == 1 and rec[:2] == ["#X", "obj"] and len(rec) > 4:
            if rec[4] in ("inlet", "inlet~"):
                ins += 1
            elif rec[4] in ("outlet", "outlet~"):
                outs += 1
        elif depth == 1 and rec[:2] == ["#X", "coords"]:
            coords = rec[2:]
    gop = None
    if coords and len(coords) >= 7 and int(_num(coords[6])):
        gop = (_num(coords[4]), _num(coords[5]))
    return {"io": (ins, outs), "gop": gop}


def parse(path, abstractions=None):
    """A Patch: its canvases (the file's own and every subpatch), each with
    its boxes, labels, cords and window."""
    path = Path(path)
    if abstractions is None:
        abstractions = {p.stem: read_abstraction(p) for p in path.parent.glob("*.pd")
                        if not p.stem.endswith("-help") and p != path}
    canvases, stack = [], []
    font = 12
    for rec in records(path.read_text()):
        if not rec:
            continue
        head = rec[0]
        if head == "#N" and len(rec) > 1 and rec[1] == "canvas":
            nums = rec[2:]
            if not stack:
                font = int(_num(nums[4], 12)) if len(nums) > 4 else 12
                canvas = Canvas(path.name, tuple(_num(v) for v in nums[:4]), font)
            else:
                name = nums[4] if len(nums) > 4 else "(subpatch)"
                is_open = len(nums) > 5 and nums[5] == "1"
                canvas = Canvas(name, tuple(_num(v) for v in nums[:4]), font, open=is_open)
            canvases.append(canvas)
            stack.append(canvas)
            continue
        if head != "#X" or not stack:
            continue
        canvas = stack[-1]
        fw, fh = font_metrics(canvas.font)
        kind = rec[1] if len(rec) > 1 else ""
        if kind == "connect" and len(rec) >= 6:
            canvas.cords.append(tuple(int(_num(v)) for v in rec[2:6]))
        elif kind == "coords":
            canvas.coords = rec[2:]
        elif kind == "restore":
            child = stack.pop()
            parent = stack[-1]
            x, y = _num(rec[2]), _num(rec[3])
            tokens, width = split_width(rec[4:])
            gop = child.coords and len(child.coords) >= 7 and int(_num(child.coords[6]))
            graph = tokens[:1] == ["graph"]
            if (gop or graph) and child.coords and len(child.coords) >= 6:
                w, h = _num(child.coords[4]), _num(child.coords[5])
                box = Box(len(parent.boxes), "graph", " ".join(tokens), (x, y, x + w, y + h))
            else:
                text, rect = text_rect(x, y, tokens, width, fw, fh)
                box = Box(len(parent.boxes), "obj", text, rect)
            ins = sum(1 for b in child.boxes if b and b.text.split(" ")[:1] in (["inlet"], ["inlet~"]))
            outs = sum(1 for b in child.boxes if b and b.text.split(" ")[:1] in (["outlet"], ["outlet~"]))
            box.inlets, box.outlets = ins, outs
            parent.boxes.append(box)
            if not graph:
                parent.children.append(child)
            else:
                canvases.remove(child)   # an array's graph has no window of its own to check
            # '#X f N' after a restore sets the box width; handled by the next record
        elif kind == "f" and canvas.boxes and canvas.boxes[-1] is not None and canvas.boxes[-1].kind == "obj":
            box = canvas.boxes[-1]
            tokens = box.text.split(" ")
            _, box.rect = text_rect(box.rect[0], box.rect[1], tokens, int(_num(rec[2])), fw, fh)
        elif kind in ("obj", "msg", "text", "floatatom", "symbolatom", "listbox") and len(rec) >= 4:
            x, y = _num(rec[2]), _num(rec[3])
            index = len(canvas.boxes)
            tokens, width = split_width(rec[4:])
            if kind == "text":
                text, rect = text_rect(x, y, tokens, width, fw, fh, comment=True)
                canvas.boxes.append(Box(index, "text", text, rect, 0, 0))
            elif kind == "msg":
                text, rect = text_rect(x, y, tokens, width, fw, fh)
                canvas.boxes.append(Box(index, "msg", text, rect, 1, 1))
            elif kind in ("floatatom", "symbolatom", "listbox"):
                chars = int(_num(tokens[0], 5)) if tokens else 5
                chars = chars or (5 if kind == "floatatom" else 10)
                rect = (x, y, x + chars * fw + 2, y + fh + 4)
                canvas.boxes.append(Box(index, "atom", kind, rect, 1, 1))
                label = _label_text(tokens[4]) if len(tokens) > 4 else ""
                if label:
                    side = int(_num(tokens[3]))
                    lw = len(label) * fw
                    x1, y1, x2, y2 = rect
                    lrect = {0: (x1 - 3 - lw, y1, x1 - 3, y2), 1: (x2 + 2, y1, x2 + 2 + lw, y2),
                             2: (x1, y1 - fh - 1, x1 + lw, y1 - 1), 3: (x1, y2 + 1, x1 + lw, y2 + 1 + fh)}[side]
                    canvas.labels.append(Box(-1, "label", label, lrect, 0, 0, owner=index))
            else:
                name, args = (tokens[0], tokens[1:]) if tokens else ("", [])
                gui = gui_rect(name, x, y, args, fw, fh)
                if gui:
                    rect, label = gui
                    kind_ = "cnv" if name in ("cnv", "my_canvas") else "gui"
                    canvas.boxes.append(Box(index, kind_, name, rect, 0 if kind_ == "cnv" else 1,
                                            0 if kind_ == "cnv" else 1))
                    if label:
                        canvas.labels.append(Box(-1, "label", label[0], label[1], 0, 0, owner=index))
                    continue
                gop = abstractions.get(name, {}).get("gop")
                if gop:
                    rect = (x, y, x + gop[0], y + gop[1])
                    text = box_text(tokens)
                else:
                    text, rect = text_rect(x, y, tokens, width, fw, fh)
                io = io_counts(name, args, abstractions)
                box = Box(index, "obj", text, rect, *(io or (0, 0)))
                box.known = io is not None
                canvas.boxes.append(box)
        elif kind in ("scalar", "array"):
            pass
    # Unknown io counts: at least as many as the cords use.
    for canvas in canvases:
        for source, outlet, sink, inlet in canvas.cords:
            if source < len(canvas.boxes):
                b = canvas.boxes[source]
                b.outlets = max(b.outlets, outlet + 1)
            if sink < len(canvas.boxes):
                b = canvas.boxes[sink]
                b.inlets = max(b.inlets, inlet + 1)
    return Patch(path, canvases)


# --- geometry -------------------------------------------------------------------------

def cord_line(canvas, cord):
    source, outlet, sink, inlet = cord
    a, b = canvas.boxes[source], canvas.boxes[sink]
    ax1, _, ax2, ay2 = a.rect
    bx1, by1, bx2, _ = b.rect
    nout = max(a.outlets - 1, 1)
    nin = max(b.inlets - 1, 1)
    x1 = ax1 + ((ax2 - ax1 - IOWIDTH) * outlet) // nout + IOMIDDLE
    x2 = bx1 + ((bx2 - bx1 - IOWIDTH) * inlet) // nin + IOMIDDLE
    return (x1, ay2, x2, by1)


def overlaps(r, s):
    return r[0] < s[2] and s[0] < r[2] and r[1] < s[3] and s[1] < r[3]


def segment_hits_rect(line, rect, margin=1):
    """Whether the segment passes through the rectangle shrunk by `margin` (Liang-Barsky)."""
    x1, y1, x2, y2 = line
    rx1, ry1, rx2, ry2 = rect[0] + margin, rect[1] + margin, rect[2] - margin, rect[3] - margin
    if rx1 >= rx2 or ry1 >= ry2:
        return False
    dx, dy = x2 - x1, y2 - y1
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x1 - rx1), (dx, rx2 - x1), (-dy, y1 - ry1), (dy, ry2 - y1)):
        if p == 0:
            if q < 0:
                return False
        else:
            t = q / p
            if p < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 > t1:
                return False
    return True


def describe(box):
    text = box.text.replace("\n", " ")
    text = text if len(text) <= 40 else text[:37] + "..."
    where = f"at {int(box.rect[0])},{int(box.rect[1])}"
    return f"[{text}] {where}" if box.kind != "label" else f"label '{text}' {where}"


def gop_rect(canvas):
    """The graph-on-parent area of a canvas (what a parent shows of it), or None."""
    c = canvas.coords
    if c and len(c) >= 9 and int(_num(c[6])):
        x, y = _num(c[7]), _num(c[8])
        return (x, y, x + _num(c[4]), y + _num(c[5]))
    return None


def window_problems(canvas, where, screen=SCREEN):
    x, y, w, h = canvas.window
    if w > screen[0] or h > screen[1]:
        return [f"{where}: window {int(w)}x{int(h)} is larger than {screen[0]}x{screen[1]}"]
    if x + w > screen[0] or y + h > screen[1]:
        return [f"{where}: window at {int(x)},{int(y)} of {int(w)}x{int(h)} runs off a "
                f"{screen[0]}x{screen[1]} screen"]
    return []


def canvas_problems(canvas, where, area=None):
    """Overlaps and crossing cords; within `area` only (a GOP panel), when given."""
    out = []
    x, y, w, h = canvas.window
    boxes = canvas.all_boxes()
    if area is None:
        for box in boxes:
            bx1, by1, bx2, by2 = box.rect
            if bx1 < 0 or by1 < 0 or bx2 > w or by2 > h - MENU_BAR:
                out.append(f"{where}: {describe(box)} lies outside the {int(w)}x{int(h)} window")
    solid = [b for b in boxes if b.kind != "cnv" and (area is None or overlaps(b.rect, area))]
    for i, a in enumerate(solid):
        for b in solid[i + 1:]:
            if a.kind == "label" and a.owner == b.index or b.kind == "label" and b.owner == a.index:
                continue
            if overlaps(a.rect, b.rect):
                out.append(f"{where}: {describe(a)} overlaps {describe(b)}")
    for cord in canvas.cords:
        source, _, sink, _ = cord
        if source >= len(canvas.boxes) or sink >= len(canvas.boxes):
            out.append(f"{where}: a cord names a box that does not exist: {cord}")
            continue
        line = cord_line(canvas, cord)
        where_cord = f"{where}: the cord from {describe(canvas.boxes[source])} to {describe(canvas.boxes[sink])}"
        if area is not None:
            if segment_hits_rect(line, area, margin=0):
                out.append(f"{where_cord} crosses the panel")
            continue
        for box in boxes:
            if box.index in (source, sink):
                continue
            if segment_hits_rect(line, box.rect):
                out.append(f"{where_cord} crosses {describe(box)}")
    return out


def problems(patch, screen=SCREEN, whole=True):
    """Every reason the patch reads badly, one sentence each.

    Every window's size, and the panel (the graph-on-parent area of the
    patch's own window): no cord across it and no box over another; with
    whole (the default) every window in full besides."""
    out = []
    for canvas in patch.canvases:
        where = f"{patch.path.name}" + ("" if canvas is patch.canvases[0] else f" [pd {canvas.name}]")
        out += window_problems(canvas, where, screen)
        if whole:
            out += canvas_problems(canvas, where)
        if canvas is patch.canvases[0] and gop_rect(canvas):
            out += canvas_problems(canvas, where, gop_rect(canvas))
    return out
