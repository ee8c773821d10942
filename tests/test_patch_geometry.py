"""Every installed patch reads at a glance on a 1024x768 screen: no box or
comment over another, no cord across a box or a comment, no window larger
than the screen (patch_geometry computes what Pd 0.53 draws, from the files).

Every patch is checked in full, every window of it: the help patches, and
the abstractions inside, their subpatches too (opened to see how they work,
they read as well as the help). The panel (the graph-on-parent area) of an
abstraction must have no cord across it and nothing over anything else.

The checker itself must fail on a patch made to overlap, on a cord across a
box, and on a window too large.
"""

from pathlib import Path

import pytest

import patch_geometry as geometry
from pd_patch import REPO

HELP = sorted(REPO.glob("hallu/*-help.pd")) + [REPO / "pd_external" / "ganspacesynth~-help.pd"]
ABSTRACTIONS = sorted(p for p in REPO.glob("hallu/*.pd") if not p.stem.endswith("-help"))


def test_every_patch_is_listed():
    names = {p.stem for p in ABSTRACTIONS}
    assert {"hallu", "hallu-steps", "hallu-step-editor", "hallu-settings", "hallu-player", "hallu-path",
            "hallu-json"} <= names
    assert {p.stem[:-len("-help")] for p in HELP} >= names


@pytest.mark.parametrize("path", HELP, ids=lambda p: p.name)
def test_help_patch_reads_at_a_glance(path):
    patch = geometry.parse(path)
    assert len(patch.canvases) >= 3          # itself, [pd reference], [pd META]
    assert {"reference", "META"} <= {c.name for c in patch.canvases}
    assert geometry.problems(patch) == []


@pytest.mark.parametrize("path", ABSTRACTIONS, ids=lambda p: p.name)
def test_abstraction_reads_at_a_glance_inside(path):
    assert geometry.problems(geometry.parse(path)) == []


def test_hallu_tool_has_no_cord_across_its_panel():
    patch = geometry.parse(REPO / "hallu" / "hallu.pd")
    top = patch.canvases[0]
    assert geometry.canvas_problems(top, "hallu.pd") == []
    panel = geometry.gop_rect(top)
    assert panel is not None
    for cord in top.cords:
        assert not geometry.segment_hits_rect(geometry.cord_line(top, cord), panel, margin=0)


# --- the checker fails where it should --------------------------------------------

def write(tmp_path, body, header="#N canvas 0 40 600 400 12;"):
    path = tmp_path / "made.pd"
    path.write_text(header + "\n" + body + "\n")
    return geometry.parse(path)


def test_font_metrics_are_pds():
    assert geometry.font_metrics(12) == (7, 16)
    assert geometry.font_metrics(10) == (6, 13)
    assert geometry.font_metrics(16) == (10, 19)
    assert geometry.font_metrics(11) == (6, 13)


def test_box_sizes_follow_pds_text_layout(tmp_path):
    patch = write(tmp_path, "#X msg 10 10 hello;\n#X obj 10 50 f;\n#X text 10 90 "
                  + " ".join(["word"] * 30) + ";\n#X text 10 200 a b c, f 10;")
    msg, obj, long_text, narrow = patch.canvases[0].boxes
    assert msg.rect == (10, 10, 10 + 5 * 7 + 4, 10 + 16 + 5)
    assert obj.rect[2] - obj.rect[0] == 3 * 7 + 4          # at least three characters wide
    # 30 words of 5 characters wrap at 60: 12 per line (59 characters), 3 lines.
    assert long_text.rect == (10, 91, 10 + 59 * 7 + 4, 90 + 3 * 16 + 5 - 2)
    assert narrow.rect[2] - narrow.rect[0] == 10 * 7 + 4


def test_checker_fails_on_overlap(tmp_path):
    patch = write(tmp_path, "#X msg 10 10 interp 8 \\, spacing 0.2;\n#X msg 40 20 hallucinate x;")
    found = geometry.problems(patch)
    assert len(found) == 1 and "overlaps" in found[0], found


def test_checker_fails_on_comment_over_box(tmp_path):
    patch = write(tmp_path, "#X obj 10 10 print x;\n#X text 30 15 a note;")
    assert any("overlaps" in p for p in geometry.problems(patch))


def test_checker_fails_on_cord_across_box(tmp_path):
    patch = write(tmp_path, "#X msg 10 10 bang;\n#X obj 10 50 print between;\n#X obj 10 100 print below;\n"
                  "#X connect 0 0 2 0;")
    found = geometry.problems(patch)
    assert len(found) == 1 and "crosses [print between]" in found[0], found


def test_checker_fails_on_cord_across_comment(tmp_path):
    patch = write(tmp_path, "#X msg 10 10 bang;\n#X text 0 50 a comment in the way;\n"
                  "#X obj 10 100 print below;\n#X connect 0 0 2 0;")
    assert any("crosses [a comment in the way]" in p for p in geometry.problems(patch))


def test_checker_passes_clean_patch(tmp_path):
    patch = write(tmp_path, "#X msg 10 10 bang;\n#X obj 10 50 print below;\n#X text 100 10 a note;\n"
                  "#X connect 0 0 1 0;")
    assert geometry.problems(patch) == []


def test_checker_fails_on_large_windows(tmp_path):
    patch = write(tmp_path, "#N canvas 0 0 1200 500 sub 0;\n#X restore 10 10 pd sub;",
                  header="#N canvas 0 40 800 900 12;")
    found = geometry.problems(patch)
    assert any("made.pd: window 800x900" in p for p in found), found
    assert any("[pd sub]: window 1200x500" in p for p in found), found


def test_checker_fails_on_box_outside_window(tmp_path):
    assert any("outside" in p for p in geometry.problems(write(tmp_path, "#X obj 500 380 print far;")))


def test_checker_fails_on_cord_across_a_panel(tmp_path):
    body = ("#X obj 20 20 cnv 15 200 100 empty empty empty 20 12 0 14 #e0e0e0 #404040 0;\n"
            "#X obj 300 10 r x;\n#X obj 30 200 print y;\n#X connect 1 0 2 0;\n"
            "#X coords 0 -1 1 1 220 120 2 10 10;")
    patch = write(tmp_path, body)
    found = geometry.problems(patch, whole=False)
    assert len(found) == 1 and "crosses the panel" in found[0], found
