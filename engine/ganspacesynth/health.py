"""Is a GAN training run healthy? Sane bands for its losses, watched over a window of steps.

A WGAN-GP run that goes wrong rarely produces NaN at once: the
discriminator's scores drift away from zero (the drift term D(real)^2 grows
to 10^5), the gradient penalty follows, and the losses reach thousands while
the generator's output stops changing for the better. By then every further
step is wasted and the checkpoints it writes are worse than the earlier ones.

``HealthWatch`` keeps the last ``window`` values of each watched quantity
and calls the run *diverging* while the median of any of them lies outside
its band. The median, not the latest value, so that a single spike (common
at a stage change, when the optimisers restart) is not a divergence; a
non-finite value is one at once. The bands are wide: a healthy run on
Magenta's settings stays one or two orders of magnitude inside them (at the
stage-resolution penalty, drift below 4 and the penalty below 1 on the
default model's data), the failed runs they were drawn from went one or two
orders outside.
"""

import collections
import dataclasses
import math
from typing import Dict, List, Optional, Tuple

# (low, high) for each watched quantity of the trainer's step statistics.
HEALTHY_BANDS: Dict[str, Tuple[float, float]] = {
    # mean (|grad D| - 1)^2 on the interpolates: 10 means slopes about 4x the target
    "gradient_penalty": (0.0, 10.0),
    # mean D(real)^2: |D(real)| about 10 and more means the critic's scores run away
    "drift": (0.0, 100.0),
    # the full losses, pitch classifier terms included (10 x cross entropy: a
    # classifier at chance on 61 labels gives 41)
    "d_loss": (-500.0, 500.0),
    "g_loss": (-500.0, 500.0),
}

DEFAULT_WINDOW = 100


@dataclasses.dataclass
class Verdict:
    """What the watch concluded after one step."""

    healthy: bool
    # (quantity, median over the window, band) for each quantity out of its band
    out_of_band: List[Tuple[str, float, Tuple[float, float]]]
    non_finite: List[str]

    def describe(self) -> str:
        """One line for a person: which quantity left which band."""
        if self.healthy:
            return "healthy"
        parts = [f"{name} not finite" for name in self.non_finite]
        for name, median, (low, high) in self.out_of_band:
            limit = f"> {high:g}" if median > high else f"< {low:g}"
            parts.append(f"{name} {median:.3g} {limit}")
        return "; ".join(parts)

    def short(self) -> str:
        """A few characters for a progress line."""
        if self.healthy:
            return ""
        names = self.non_finite + [name for name, _, _ in self.out_of_band]
        return "DIVERGING " + ",".join(names)


class HealthWatch:
    """Medians over the last ``window`` steps of each quantity in ``bands``."""

    def __init__(self, bands: Optional[Dict[str, Tuple[float, float]]] = None,
                 window: int = DEFAULT_WINDOW):
        if window < 1:
            raise ValueError(f"window {window}: must be at least one step")
        self.bands = dict(HEALTHY_BANDS if bands is None else bands)
        self.window = int(window)
        self.history = {name: collections.deque(maxlen=self.window) for name in self.bands}
        self.verdict = Verdict(True, [], [])

    def observe(self, stats: Dict[str, float]) -> Verdict:
        """Add one step's statistics (names not watched are ignored) and judge."""
        non_finite = [name for name, value in stats.items() if not math.isfinite(value)]
        for name, values in self.history.items():
            if name in stats and math.isfinite(stats[name]):
                values.append(float(stats[name]))
        out = []
        for name, values in self.history.items():
            # Half a window before judging: the first steps of a run say little.
            if len(values) < max(1, self.window // 2):
                continue
            median = float(sorted(values)[len(values) // 2])
            low, high = self.bands[name]
            if not low <= median <= high:
                out.append((name, median, (low, high)))
        self.verdict = Verdict(not out and not non_finite, out, non_finite)
        return self.verdict

    @property
    def healthy(self) -> bool:
        """Not known to be diverging (also true before there is enough to judge)."""
        return self.verdict.healthy

    @property
    def judged_healthy(self) -> bool:
        """Seen long enough (half a window of every quantity) and found healthy."""
        enough = all(len(values) >= max(1, self.window // 2) for values in self.history.values())
        return enough and self.verdict.healthy
