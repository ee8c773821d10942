"""A training run's loss curves as a PNG, read back from its TensorBoard logs.

The trainer writes its scalars to ``RUN/logs/`` (TensorBoard's event files);
reading them back means the picture needs no second log, covers every
resumption of the run, and can be drawn for any run, finished or not, with
or without TensorBoard installed. When a run was resumed from a checkpoint
older than its last logged step, the steps after the checkpoint were logged
twice; the later write (the resumed run's) is the one kept.
"""

from pathlib import Path
from typing import Dict

import numpy as np

from .health import HEALTHY_BANDS

# Panels: (title, quantities, log scale)
PANELS = (
    ("losses", ("d_loss", "g_loss"), False),
    ("Wasserstein estimate", ("wasserstein",), False),
    ("gradient penalty and drift", ("gradient_penalty", "drift"), True),
    ("pitch classifier (cross entropy)", ("ac_real", "ac_fake"), True),
)


def read_scalars(logs_dir) -> Dict[str, np.ndarray]:
    """{tag: array of (step, value) rows sorted by step} from every event file in ``logs_dir``."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    files = sorted(Path(logs_dir).glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    values: Dict[str, Dict[int, float]] = {}
    for path in files:  # oldest first, so that a resumed run's writes win
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                event = event_pb2.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.HasField("tensor"):
                        number = float(tf.make_ndarray(value.tensor))
                    elif value.HasField("simple_value"):
                        number = float(value.simple_value)
                    else:
                        continue
                    values.setdefault(value.tag, {})[int(event.step)] = number
        except tf.errors.DataLossError:
            pass  # a file cut short by a killed run: keep what was read
    return {tag: np.array(sorted(rows.items()), np.float64).reshape(-1, 2)
            for tag, rows in values.items()}


def _smooth(y, width):
    """Running median over ``width`` points: spikes stay visible as the raw trace."""
    if width <= 1 or len(y) < width:
        return y
    from scipy.ndimage import median_filter

    return median_filter(y, size=width, mode="nearest")


def plot_loss_curves(logs_dir, path, title=None):
    """Draw the run's loss curves into ``path`` (PNG); returns the path, or None without data."""
    from .plot import save_figure, subplots

    scalars = read_scalars(logs_dir)
    if not any(name in scalars for _, names, _ in PANELS for name in names):
        return None
    figure, axes = subplots(len(PANELS), 1, figsize=(10, 2.6 * len(PANELS)), dpi=100, sharex=True)
    stage_changes = []
    if "stage" in scalars:
        steps, stages = scalars["stage"][:, 0], scalars["stage"][:, 1]
        stage_changes = steps[1:][np.diff(stages) != 0]
    for ax, (panel_title, names, log_scale) in zip(axes, PANELS):
        for name in names:
            if name not in scalars:
                continue
            steps, y = scalars[name][:, 0], scalars[name][:, 1]
            width = max(1, len(y) // 200)
            line, = ax.plot(steps, y, linewidth=0.4, alpha=0.35)
            ax.plot(steps, _smooth(y, width), linewidth=1.2, color=line.get_color(), label=name)
            if name in HEALTHY_BANDS and log_scale:
                ax.axhline(HEALTHY_BANDS[name][1], color=line.get_color(), linestyle=":",
                           linewidth=0.8)
        if log_scale:
            ax.set_yscale("symlog", linthresh=1e-2)
        for step in stage_changes:
            ax.axvline(step, color="0.8", linewidth=0.6, zorder=0)
        if "health/out_of_band" in scalars:
            steps, flags = scalars["health/out_of_band"][:, 0], scalars["health/out_of_band"][:, 1]
            bad = flags > 0
            if np.any(bad):
                ax.fill_between(steps, 0, 1, where=bad, color="red", alpha=0.12, step="post",
                                transform=ax.get_xaxis_transform(), linewidth=0)
        ax.set_title(panel_title, fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("step (grey lines: stage changes; dotted: top of the healthy band; "
                        "red: out of band)")
    return save_figure(figure, path, title)
