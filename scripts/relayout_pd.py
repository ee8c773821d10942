"""Re-lay out the insides of Pd patches so that no box sits on another and no
cord crosses a box or a comment, every window within 1024x768, without
changing what the patch does.

    python scripts/relayout_pd.py hallu/hallu-steps.pd [...]
    python scripts/relayout_pd.py --same-logic OLD.pd NEW.pd

Only windows that the geometry checker (tests/patch_geometry.py) faults are
rewritten. In such a window:

- Everything on the graph-on-parent panel stays where it is.
- Objects that must stay in their window stay in it (moved within it): GUIs,
  [inlet]/[outlet] (their left-to-right order is kept), [loadbang], signal
  objects, abstractions and subpatches.
- The other objects (runs of consecutive ones, in file order) move into new
  subpatches [pd NAME-n] when the window is too full; a subpatch stands in
  the file where its run stood, so every object is still created in the same
  order (which is the order of [loadbang]s and of receivers of one name).
- A cord between windows, or one that would cross a box, becomes an
  [s $0-cN] connected at the same place in its outlet's list of cords (so
  messages still go out in the same order) and an [r $0-cN], one for all
  the cords so replaced into one inlet: every [s $0-cN] reaches one receiver.
- The rest is laid out in rows by wiring depth (a layered graph layout).
"""

import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import patch_geometry as geometry  # noqa: E402

OBJECT_KINDS = ("obj", "msg", "text", "floatatom", "symbolatom", "listbox")
GUI = {"bng", "tgl", "hsl", "hslider", "vsl", "vslider", "hradio", "vradio", "hdl", "vdl", "nbx",
       "my_numbox", "cnv", "my_canvas", "vu"}
FIXED_OBJECTS = {"inlet", "inlet~", "outlet", "outlet~", "loadbang", "declare"}
GAP_X, GAP_Y, MARGIN = 8, 28, 10
WIDTH, HEIGHT = 1014, 738 - 10


class Item:
    def __init__(self, rec, sub=None):
        self.rec, self.sub, self.extra = rec, sub, []

    @property
    def kind(self):
        return "canvas" if self.sub is not None else self.rec[1]

    @property
    def name(self):
        return self.rec[4] if self.rec[1] == "obj" and len(self.rec) > 4 else ""

    def move(self, x, y):
        self.rec = self.rec[:2] + [str(int(x)), str(int(y))] + self.rec[4:]


class Canvas:
    def __init__(self, header):
        self.header, self.pre, self.items, self.connects, self.post = header, [], [], [], []


def load(path):
    stack, root = [], None
    for rec in geometry.records(Path(path).read_text()):
        if not rec:
            continue
        if rec[:2] == ["#N", "canvas"]:
            canvas = Canvas(rec)
            root = root or canvas
            stack.append(canvas)
            continue
        top = stack[-1]
        if rec[:2] == ["#X", "restore"]:
            child = stack.pop()
            stack[-1].items.append(Item(rec, child))
        elif rec[0] == "#X" and rec[1] in OBJECT_KINDS:
            top.items.append(Item(rec))
        elif rec[:2] == ["#X", "connect"]:
            top.connects.append(tuple(int(v) for v in rec[2:6]))
        elif rec[:2] == ["#X", "coords"]:
            top.post.append(rec)
        elif top.items:
            top.items[-1].extra.append(rec)
        else:
            top.pre.append(rec)
    return root


def dump_records(canvas, header=None):
    out = [header or canvas.header] + canvas.pre
    for item in canvas.items:
        if item.sub is not None:
            out += dump_records(item.sub)
        out.append(item.rec)
        out += item.extra
    out += [["#X", "connect", *map(str, c)] for c in canvas.connects]
    return out + canvas.post


def dump(canvas, header=None):
    return "".join(" ".join(rec) + ";\n" for rec in dump_records(canvas, header))


class Measure:
    """Box rectangles and inlet/outlet counts of a canvas, from the geometry checker."""

    def __init__(self, folder):
        self.abstractions = {p.stem: geometry.read_abstraction(p) for p in Path(folder).glob("*.pd")
                             if not p.stem.endswith("-help")}
        self.tmp = Path(tempfile.mkdtemp()) / "canvas.pd"

    def parse(self, canvas):
        self.tmp.write_text(dump(canvas, ["#N", "canvas", "0", "0", "1024", "768", "12"]))
        return geometry.parse(self.tmp, self.abstractions).canvases[0]


def problems_of(parsed, panel=None):
    """(boxes overlapping, cords crossing) of a parsed canvas."""
    boxes = parsed.all_boxes()
    solid = [b for b in boxes if b.kind != "cnv"]
    overlap = []
    for i, a in enumerate(solid):
        for b in solid[i + 1:]:
            if a.kind == "label" and a.owner == b.index or b.kind == "label" and b.owner == a.index:
                continue
            if geometry.overlaps(a.rect, b.rect):
                overlap.append((a, b))
    crossing = []
    for n, cord in enumerate(parsed.cords):
        line = geometry.cord_line(parsed, cord)
        for box in boxes:
            if box.index in (cord[0], cord[2]) and box.kind != "label":
                continue
            if geometry.segment_hits_rect(line, box.rect):
                crossing.append(n)
                break
    return overlap, crossing


def is_fixed(item, panel, rect):
    if item.kind == "canvas" or item.kind in ("floatatom", "symbolatom", "listbox"):
        return True
    if panel is not None and geometry.overlaps(rect, panel):
        return True
    name = item.name
    return (name in GUI or name in FIXED_OBJECTS or name.endswith("~")
            or name in MEASURE.abstractions)


class Relayout:
    def __init__(self, counter):
        self.counter = counter   # [n]: the next $0-cN number, shared by the file
        self.incoming, self.has_out = (lambda i, x, y: []), set()

    def new_name(self):
        self.counter[0] += 1
        return f"\\$0-c{self.counter[0]}"

    def fix(self, canvas, name):
        """Rewrite `canvas` in place (and its subpatches), so that it passes."""
        for item in canvas.items:
            if item.sub is not None and item.sub.header[-2:] != ["graph"]:
                sub_name = item.rec[5] if len(item.rec) > 5 else "sub"
                self.fix(item.sub, sub_name)
        parsed = MEASURE.parse(canvas)
        panel = geometry.gop_rect(parsed) if canvas.post else None
        ov, cr = problems_of(parsed)
        outside = [b for b in parsed.all_boxes() if b.rect[2] > WIDTH or b.rect[3] > HEIGHT]
        if not ov and not cr and not outside:
            return
        rects = [b.rect for b in parsed.boxes]
        fixed = [is_fixed(it, panel, r) for it, r in zip(canvas.items, rects)]
        movable = sum(1 for f in fixed if not f)
        # the fewest subpatches with which every window passes
        for size, least in ((None, 0), (30, 6), (24, 6), (18, 6), (14, 6), (10, 6), (18, 1), (12, 1),
                            (8, 1), (5, 1)):
            if size is not None and movable <= size or size is None and movable > 40:
                continue
            trial, counter = copy.deepcopy(canvas), self.counter[0]
            if size is not None:
                self.group(trial, fixed, name, size, least)
            self.layout(trial, panel)
            if not self.faults(trial):
                break
            self.counter[0] = counter
        canvas.__dict__.update(trial.__dict__)

    def faults(self, canvas):
        MEASURE.tmp.write_text(dump(canvas, ["#N", "canvas", "0", "0"] + canvas.header[4:6] + ["12"]))
        patch = geometry.parse(MEASURE.tmp, MEASURE.abstractions)
        patch.canvases[0].coords = None if not canvas.post else patch.canvases[0].coords
        return geometry.problems(patch)

    # --- moving runs into subpatches ----------------------------------------------

    def group(self, canvas, fixed, name, max_group, least):
        runs, run = [], []
        for i, f in enumerate(fixed):
            if f:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(i)
        if run:
            runs.append(run)
        chunks = []
        for run in runs:
            if len(run) < least:
                continue
            n = -(-len(run) // max_group)
            size = -(-len(run) // n)
            chunks += [run[k:k + size] for k in range(0, len(run), size)]
        where = {}
        for c, chunk in enumerate(chunks):
            for i in chunk:
                where[i] = c
        subs = [Canvas(["#N", "canvas", "0", "0", "400", "300", f"{name}-{c + 1}", "0"])
                for c in range(len(chunks))]
        new_index, new_items, placed = {}, [], set()
        for i, item in enumerate(canvas.items):
            c = where.get(i)
            if c is None:
                new_index[i] = ("top", len(new_items))
                new_items.append(item)
            else:
                if c not in placed:
                    placed.add(c)
                    box = Item(["#X", "restore", "0", "0", "pd", f"{name}-{c + 1}"], subs[c])
                    new_items.append(box)
                new_index[i] = (c, len(subs[c].items))
                subs[c].items.append(item)
        holders = {"top": (canvas, new_items)}
        for c, sub in enumerate(subs):
            holders[c] = (sub, sub.items)
        connects = {k: [] for k in holders}
        receivers = {}
        for a, o, b, i in canvas.connects:
            (ca, ia), (cb, ib) = new_index[a], new_index[b]
            if ca == cb:
                connects[ca].append((ia, o, ib, i))
                continue
            items_a, items_b = holders[ca][1], holders[cb][1]
            if (cb, ib, i) not in receivers:
                receivers[(cb, ib, i)] = self.new_name()
                items_b.append(Item(["#X", "obj", "0", "0", "r", receivers[(cb, ib, i)]]))
                connects[cb].append((len(items_b) - 1, 0, ib, i))
            items_a.append(Item(["#X", "obj", "0", "0", "s", receivers[(cb, ib, i)]]))
            connects[ca].append((ia, o, len(items_a) - 1, 0))
        canvas.items = new_items
        canvas.connects = connects["top"]
        canvas.__dict__.pop("receivers", None)
        for c, sub in enumerate(subs):
            sub.connects = connects[c]
            self.layout(sub, None)

    # --- the layered layout -------------------------------------------------------

    def bridge(self, canvas, n):
        """Replace cord n by an [s] (at its place in its outlet's list of cords)
        and an [r]: one [r] for every cord so bridged into the same inlet, so
        each [s] still reaches one receiver."""
        a, o, b, i = canvas.connects[n]
        receivers = canvas.__dict__.setdefault("receivers", {})
        if (b, i) not in receivers:
            label = self.new_name()
            canvas.items.append(Item(["#X", "obj", "0", "0", "r", label]))
            canvas.connects.append((len(canvas.items) - 1, 0, b, i))
            receivers[(b, i)] = label
        canvas.items.append(Item(["#X", "obj", "0", "0", "s", receivers[(b, i)]]))
        canvas.connects[n] = (a, o, len(canvas.items) - 1, 0)

    @staticmethod
    def is_bridge(canvas, n):
        a, o, b, i = canvas.connects[n]
        ends = (canvas.items[b].rec[4:5], canvas.items[a].rec[4:5])
        return (ends[0] == ["s"] and canvas.items[b].rec[5].startswith("\\$0-c")
                or ends[1] == ["r"] and canvas.items[a].rec[5].startswith("\\$0-c"))

    def layout(self, canvas, panel):
        for attempt in range(20):
            parsed = MEASURE.parse(canvas)
            rects = [b.rect for b in parsed.boxes]
            fixed_panel = [panel is not None and geometry.overlaps(r, panel) for r in rects]
            signal = [it.name.endswith("~") for it in canvas.items]
            long_ = self.place(canvas, parsed, fixed_panel)
            if long_:
                for n in sorted(long_, reverse=True):
                    self.bridge(canvas, n)
                continue
            parsed = MEASURE.parse(canvas)
            ov, cr = problems_of(parsed)
            cr = [n for n in cr if n in self.direct and not signal[canvas.connects[n][0]]
                  and not self.is_bridge(canvas, n)]
            if not cr:
                break
            for n in sorted(cr, reverse=True):
                self.bridge(canvas, n)
        self.fit_window(canvas, MEASURE.parse(canvas))

    def place(self, canvas, parsed, fixed_panel):
        """Give every box that is not on the panel a place; return the cords to bridge."""
        items = canvas.items
        n = len(items)
        size = [(b.rect[2] - b.rect[0], b.rect[3] - b.rect[1]) for b in parsed.boxes]
        free = [i for i in range(n) if not fixed_panel[i]]
        edges = [(k, c) for k, c in enumerate(canvas.connects) if not fixed_panel[c[0]] and not fixed_panel[c[2]]]
        succ = {i: [] for i in range(n)}
        pred = {i: [] for i in range(n)}
        # break cycles: a cord that goes back in a depth-first order is not used for depth
        order, state, back = [], {}, set()
        for k, (a, o, b, i) in edges:
            succ[a].append((b, k))
        for root in free:
            if root in state:
                continue
            stack = [(root, iter(succ[root]))]
            state[root] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    order.append(node)
                    stack.pop()
                    continue
                b, k = nxt
                if state.get(b) == 1:
                    back.add(k)
                elif b not in state:
                    state[b] = 1
                    stack.append((b, iter(succ[b])))
        order.reverse()
        layer = {i: 0 for i in free}
        fwd = [(k, c) for k, c in edges if k not in back]
        for i in order:
            for k, (a, o, b, ii) in fwd:
                if a == i:
                    layer[b] = max(layer[b], layer[a] + 1)
        for k, (a, o, b, ii) in fwd:
            pred[b].append(a)
        # sources as late as possible
        has_pred = {b for k, (a, o, b, ii) in fwd}
        for i in reversed(order):
            if i not in has_pred:
                outs = [layer[b] for k, (a, o, b, ii) in fwd if a == i]
                if outs:
                    layer[i] = min(outs) - 1
        long_ = [k for k, (a, o, b, ii) in edges
                 if layer[b] - layer[a] != 1 and not items[a].name.endswith("~")]
        if long_:
            return long_
        self.direct = [k for k, c in edges]
        # header: comments and boxes without cords
        connected = {c[0] for k, c in edges} | {c[2] for k, c in edges}
        loose = [i for i in free if i not in connected]
        texts = [i for i in loose if items[i].kind == "text"]
        others = [i for i in loose if items[i].kind != "text"]
        nodes = [i for i in free if i in connected]
        rows = {}
        for i in nodes:
            rows.setdefault(layer[i], []).append(i)
        panel_rects = [b.rect for b, f in zip(parsed.boxes, fixed_panel) if f]
        blocked = None
        if panel_rects:
            blocked = (min(r[0] for r in panel_rects) - GAP_X, min(r[1] for r in panel_rects) - GAP_X,
                       max(r[2] for r in panel_rects) + GAP_X, max(r[3] for r in panel_rects) + GAP_X)
        pos = {}
        y = MARGIN
        for i in texts:
            w, h = size[i]
            self.incoming, self.has_out = (lambda i, x, y: []), set()
            y = self.put_row([i], size, y, blocked, pos, {}) + 6
        if others:
            self.incoming, self.has_out = (lambda i, x, y: []), set()
            y = self.put_row(others, size, y, blocked, pos, {}) + GAP_Y
        io = {i: (parsed.boxes[i].inlets, parsed.boxes[i].outlets) for i in range(n)}

        def port(i, k, count):
            return (size[i][0] - 7) * k // max(count - 1, 1) + 3

        into = {}
        for k, (a, o, b, ii) in fwd:
            into.setdefault(b, []).append((a, o, ii))

        def incoming(i, x, y):
            return [(pos[a][0] + port(a, o, io[a][1]), pos[a][1] + size[a][1], x + port(i, ii, io[i][0]), y)
                    for a, o, ii in into.get(i, ()) if a in pos and layer[a] < layer[i]]
        self.incoming = incoming
        self.has_out = {a for k, (a, o, b, ii) in fwd}
        top = y
        src_want = {}
        for sweep in range(3):
            y = top
            for ly in sorted(rows):
                row = rows[ly]
                want = {}
                for i in row:
                    xs = [pos[a][0] + port(a, o, io[a][1]) - port(i, ii, io[i][0])
                          for k, (a, o, b, ii) in fwd if b == i and a in pos and a in rows.get(ly - 1, ())]
                    want[i] = sum(xs) / len(xs) if xs else src_want.get(i)
                for idx, i in enumerate(row):
                    if want[i] is None:
                        want[i] = MARGIN + idx * 0.001
                row.sort(key=lambda i: (want[i], i))
                # keep inlets and outlets in their left-to-right order
                ports = [i for i in row if items[i].name in ("inlet", "inlet~", "outlet", "outlet~")]
                slots = [row.index(i) for i in ports]
                for s_, i in zip(slots, sorted(ports, key=lambda i: (float(items[i].rec[2]), i))):
                    row[s_] = i
                y = self.put_row(row, size, y, blocked, pos, want) + GAP_Y
            for i in nodes:
                xs = [pos[b][0] + port(b, ii, io[b][0]) - port(i, o, io[i][1])
                      for k, (a, o, b, ii) in fwd if a == i and b in pos]
                if xs and not any(b == i for k, (a, o, b, ii) in fwd):
                    src_want[i] = max(MARGIN, sum(xs) / len(xs))
        for i, (x, yy) in pos.items():
            items[i].move(x, yy)
        return []

    def put_row(self, row, size, y, blocked, pos, want):
        """Place a row of boxes at y, at or right of where they want to be, going
        round the panel and onto a new line when too wide; return the row's bottom."""
        def spans_at(y, h):
            if blocked and y < blocked[3] and y + h > blocked[1]:
                return [(MARGIN, blocked[0]), (blocked[2], WIDTH)]
            return [(MARGIN, WIDTH)]
        h = max(size[i][1] for i in row)
        total = sum(size[i][0] for i in row) + GAP_X * (len(row) - 1)
        spans = spans_at(y, h)
        leaves = [i for i in row if i not in self.has_out]
        inner = [i for i in row if i in self.has_out]
        leaves = leaves if sum(size[i][0] + GAP_X for i in inner) < WIDTH - MARGIN else []
        if total > WIDTH - MARGIN and leaves and len(spans) == 1 and want:
            # a fan-out too wide for a line: the boxes that end a chain in a
            # column at the right, each entered from the left through its
            # top; below it, the boxes that lead on
            x = WIDTH - max(size[i][0] for i in leaves)
            for i in leaves:
                pos[i] = (x, y)
                y += size[i][1] + 4
            if not inner:
                return y - 4
            return self.put_row_wanted(inner, size, y - 4 + GAP_Y, spans_at, pos, want,
                                       max(size[i][1] for i in inner))
        if len(spans) == 1 and total <= WIDTH - MARGIN and len(row) > 1:
            trial = {}
            self.put_row_wanted(row, size, y, spans_at, trial, want, h)
            if len({p[1] for p in trial.values()}) > 1:
                wanted = [want.get(i) for i in row if want.get(i) is not None]
                x = sum(wanted) / len(wanted) - total / 2 if wanted else MARGIN
                x = min(max(x, MARGIN), WIDTH - total)
                for i in row:
                    pos[i] = (x, y)
                    x += size[i][0] + GAP_X
                return y + h
        return self.put_row_wanted(row, size, y, spans_at, pos, want, h)

    def put_row_wanted(self, row, size, y, spans_at, pos, want, h):
        spans, span, x, bottom = spans_at(y, h), 0, MARGIN, y + h
        for i in row:
            w = size[i][0]
            while True:
                lo, hi = spans[span]
                x = max(x, lo)
                wanted = want.get(i)
                if wanted is not None:
                    x = max(x, min(wanted, hi - w))
                if x + w <= hi or (x <= lo and span == len(spans) - 1):
                    break
                if span + 1 < len(spans):
                    span += 1
                else:
                    rest = row[row.index(i):]
                    return self.put_rest(rest, size, bottom + GAP_Y, spans_at, pos, row, h)
            pos[i] = (x, y)
            bottom = max(bottom, y + size[i][1])
            x += w + GAP_X
        return bottom

    def put_rest(self, rest, size, y, spans_at, pos, row, h):
        """The boxes of a row that did not fit on its line: each where no box
        of the row is over it and no cord into the row crosses a box."""
        def rect(i):
            return (pos[i][0], pos[i][1], pos[i][0] + size[i][0], pos[i][1] + size[i][1])

        placed = [i for i in row if i in pos]
        cords = [ln for j in placed for ln in self.incoming(j, *pos[j])]
        bottom = y
        for i in rest:
            w, hh = size[i]
            line_y, done = y, False
            while not done:
                spans = spans_at(line_y, h)
                for lo, hi in spans:
                    for x in range(int(lo), int(hi - w) + 1, 3):
                        r = (x - GAP_X, line_y - 4, x + w + GAP_X, line_y + hh + 4)
                        if any(geometry.overlaps(r, rect(j)) for j in placed):
                            continue
                        lines = self.incoming(i, x, line_y)
                        if any(geometry.segment_hits_rect(ln, rect(j)) for ln in lines for j in placed):
                            continue
                        box = (x, line_y, x + w, line_y + hh)
                        if any(geometry.segment_hits_rect(ln, box) for ln in cords):
                            continue
                        pos[i], done = (x, line_y), True
                        break
                    if done:
                        break
                if not done:
                    line_y += h + GAP_Y
                    if line_y > 3000:
                        pos[i], done = (MARGIN, line_y), True
            placed.append(i)
            cords += self.incoming(i, *pos[i])
            bottom = max(bottom, pos[i][1] + hh)
        return bottom

    def fit_window(self, canvas, parsed):
        right = max([b.rect[2] for b in parsed.all_boxes()] + [200]) + 20
        bottom = max([b.rect[3] for b in parsed.all_boxes()] + [150]) + 20 + geometry.MENU_BAR
        h = canvas.header
        x, y = int(float(h[2])), int(float(h[3]))
        w, hh = min(right, 1024), min(bottom, 768)
        x, y = min(x, 1024 - w), min(y, 768 - hh)
        canvas.header = h[:2] + [str(x), str(y), str(int(w)), str(int(hh))] + h[6:]


# --- checking that the logic is the same ----------------------------------------

def bridge_name(item):
    """Whether an object is an [s $0-cN] or [r $0-cN] this tool made."""
    return item.rec[1] == "obj" and len(item.rec) == 6 and item.rec[4] in ("s", "r") and item.rec[5].startswith("\\$0-c") and item.rec[5][5:].isdigit()

def flatten(root, new_names):
    """Every object in creation order (the tool's subpatches dissolved), every cord, and
    the inlets and outlets of every window in their left-to-right order."""
    objs, cords, ports = [], [], []
    senders = {}   # global id of an [s] -> name
    receivers = {} # name -> global id of [r]
    def walk(canvas, path):
        local = {}
        io = []
        for n, item in enumerate(canvas.items):
            if item.sub is not None:
                name = item.rec[5] if len(item.rec) > 5 else ""
                if name in new_names:
                    sub_local = walk(item.sub, path)   # a new group: its objects belong to this window
                    continue
                walk(item.sub, path + [name])
                key = ("canvas", tuple(item.rec[4:]), tuple(item.sub.header[6:]))
            else:
                key = (item.rec[1],) + tuple(item.rec[4:]) + tuple(tuple(e) for e in item.extra)
            gid = len(objs)
            objs.append((key, tuple(path)))
            local[n] = gid
            if bridge_name(item):
                if item.rec[4] == "s":
                    senders[gid] = item.rec[5]
                else:
                    receivers.setdefault(item.rec[5], []).append(gid)
            if item.name in ("inlet", "inlet~", "outlet", "outlet~"):
                io.append((item.name.rstrip("~"), float(item.rec[2]), gid))
        for c in canvas.connects:
            if c[0] in local and c[2] in local:
                cords.append((local[c[0]], c[1], local[c[2]], c[3]))
            else:
                cords.append(("?", c))
        for kind in (("inlet", "outlet") if io else ()):
            seq = [g for k, x, g in sorted((t for t in io if t[0] == kind), key=lambda t: (t[1], t[2]))]
            ports.append((tuple(path), kind, [objs[g][0] for g in seq], [g for g in seq]))
        return local
    walk(root, [])
    return objs, cords, ports, senders, receivers

def logic(root, new_names):
    """Objects in creation order, the cords of every outlet in order with the tool's
    [s]/[r] pairs undone, and the order of inlets and outlets."""
    objs, cords, ports, senders, receivers = flatten(root, new_names)
    bridges = set(senders) | {g for gs in receivers.values() for g in gs}
    out_of = {}
    for c in cords:
        out_of.setdefault(c[0], []).append(c)
    resolved = []
    for c in cords:
        a, o, b, i = c
        if a in bridges:
            continue
        targets = [(b, i)]
        while any(t[0] in senders for t in targets):
            nt = []
            for t in targets:
                if t[0] in senders:
                    rs = receivers[senders[t[0]]]
                    assert len(rs) == 1, rs
                    for rc in out_of.get(rs[0], []):
                        nt.append((rc[2], rc[3]))
                    assert len(out_of.get(rs[0], [])) == 1
                else:
                    nt.append(t)
            targets = nt
        for t in targets:
            resolved.append((a, o) + t)
    keep = [g for g in range(len(objs)) if g not in bridges]
    renum = {g: n for n, g in enumerate(keep)}
    per_outlet = {}
    for a, o, b, i in resolved:
        per_outlet.setdefault((renum[a], o), []).append((renum[b], i))
    return [objs[g][0] for g in keep], per_outlet, [(p, k, names) for p, k, names, _ in ports]


def subpatch_names(canvas, acc):
    for item in canvas.items:
        if item.sub is not None:
            acc.add(item.rec[5] if len(item.rec) > 5 else "")
            subpatch_names(item.sub, acc)
    return acc


def same_logic(old_path, new_path):
    """Differences between what two versions of a patch do (empty: none)."""
    old, new = load(old_path), load(new_path)
    added = subpatch_names(new, set()) - subpatch_names(old, set())
    a, b = logic(old, set()), logic(new, added)
    out = []
    if a[0] != b[0]:
        out.append(f"objects differ ({len(a[0])} and {len(b[0])})")
    if a[1] != b[1]:
        out += [f"cords of outlet {k}: {a[1].get(k)} and {b[1].get(k)}"
                for k in sorted(set(a[1]) | set(b[1])) if a[1].get(k) != b[1].get(k)][:5]
    if a[2] != b[2]:
        out.append("inlets or outlets in another order")
    return out


MEASURE = None


def main(paths):
    global MEASURE
    for path in paths:
        path = Path(path)
        MEASURE = Measure(path.parent)
        root = load(path)
        before = geometry.records(path.read_text())
        Relayout([0]).fix(root, path.stem.replace("hallu-", ""))
        path.write_text(dump(root))
        found = geometry.problems(geometry.parse(path))
        print(f"{path}: {len(found)} problems")
        for p in found[:20]:
            print("   ", p)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--same-logic"]:
        found = same_logic(sys.argv[2], sys.argv[3])
        print("\n".join(found) or "same logic")
        sys.exit(1 if found else 0)
    main(sys.argv[1:])
