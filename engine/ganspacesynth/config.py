"""GANSynth hyperparameters: what the architecture and the audio format depend on.

Defaults are those of Magenta's released ``mel_prog_hires`` models; a model
folder's ``experiment.json`` (Magenta) or ``config.json`` (ours) overrides
them. Only the keys that shape inference live here; training settings are in
``train.py``.
"""

import dataclasses
import json
import math
from typing import List, Optional, Tuple

# NSynth models condition on 61 pitches, MIDI 24..84 (label = pitch - 24).
NSYNTH_PITCHES = list(range(24, 85))


@dataclasses.dataclass
class ModelConfig:
    latent_size: int = 256
    pitches: List[int] = dataclasses.field(default_factory=lambda: list(NSYNTH_PITCHES))
    start_height: int = 2
    start_width: int = 16
    kernel_size: int = 3
    num_resolutions: int = 7
    scale_base: int = 2
    fmap_base: int = 4096
    fmap_decay: float = 1.0
    fmap_max: int = 256
    to_rgb_activation: str = "tanh"
    sample_rate: int = 16000
    audio_length: int = 64000
    mag_normalizer_a: float = 0.0661371661726
    mag_normalizer_b: float = 0.113718730221
    p_normalizer_a: float = 0.8
    p_normalizer_b: float = 0.0
    # The one-hot pitch is multiplied by this before it joins z (Magenta: 1).
    # After the input's pixel norm a label of 1 is one entry among 256 of
    # noise, and a small model on a CPU budget never learns to pick it out:
    # its clips ignore the pitch. 48 gives the label about 90% of the input's
    # energy (48**2 / (48**2 + 256)); see the cpu-small preset in train.py.
    pitch_label_gain: float = 1.0

    # Keys of Magenta's experiment.json that this class reads.
    _EXPERIMENT_KEYS = ("latent_vector_size", "start_height", "start_width", "kernel_size",
                        "num_resolutions", "scale_base", "fmap_base", "fmap_decay", "fmap_max",
                        "to_rgb_activation", "sample_rate", "audio_length", "mag_normalizer_a",
                        "mag_normalizer_b", "p_normalizer_a", "p_normalizer_b")

    @property
    def num_pitches(self) -> int:
        return len(self.pitches)

    @property
    def num_blocks(self) -> int:
        return self.num_resolutions

    def num_filters(self, block: int) -> int:
        """Channels of block ``block`` (1-based), as tfgan's progressive GAN computes them."""
        return int(min(self.fmap_base / math.pow(2.0, block * self.fmap_decay), self.fmap_max))

    def kernel_shapes(self, block: int) -> dict:
        """Kernel shapes of block ``block``'s convs. Block 1's conv0 is a VALID
        start_height x start_width conv over [z, one-hot pitch]."""
        filters = self.num_filters(block)
        if block == 1:
            conv0 = [self.start_height, self.start_width, self.latent_size + self.num_pitches, filters]
        else:
            conv0 = [self.kernel_size, self.kernel_size, self.num_filters(block - 1), filters]
        return {"conv0": conv0, "conv1": [self.kernel_size, self.kernel_size, filters, filters],
                "to_rgb": [1, 1, filters, 2]}

    def multiply_adds(self, block: int, layer: str, fused: bool = True) -> int:
        """Multiply-adds of one clip's ``layer`` ("conv0", "conv1" or "to_rgb") in ``block``.

        ``fused``: as the engine computes it, with each block-opening 3x3 conv
        on the upscaled input done as 2x2 convs on the input padded by one
        (``generator.upscale_conv``: the even output rows over h/2 positions,
        the odd ones over h/2, each w/2 + 1 wide with both column phases), and
        block 1's conv0 as one matrix product (``InputConv``: each output reads
        the one input pixel through one tap, the padding's zeros are skipped);
        otherwise as the architecture is written.
        """
        h, w = self.block_shape(block)
        kh, kw, cin, cout = self.kernel_shapes(block)[layer]
        if fused and layer == "conv0" and block == 1:
            return h * w * cin * cout
        if fused and layer == "conv0" and block > 1 and (kh, kw) == (3, 3):
            return 2 * (h // 2) * (w // 2 + 1) * 2 * 2 * cin * 2 * cout
        return h * w * kh * kw * cin * cout

    def block_shape(self, block: int) -> Tuple[int, int]:
        scale = self.scale_base ** (block - 1)
        return self.start_height * scale, self.start_width * scale

    @property
    def output_shape(self) -> Tuple[int, int, int]:
        height, width = self.block_shape(self.num_blocks)
        return height, width, 2

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_experiment(cls, experiment: dict, pitches: Optional[List[int]] = None) -> "ModelConfig":
        """Build from Magenta's ``experiment.json`` dict (which has no pitch list)."""
        values = {}
        for key in cls._EXPERIMENT_KEYS:
            if key in experiment and experiment[key] is not None:
                values["latent_size" if key == "latent_vector_size" else key] = experiment[key]
        if experiment.get("data_type", "mel") != "mel":
            raise ValueError(f"data_type {experiment['data_type']!r} is not supported: "
                             "only GANSynth's mel spectrogram models ('mel') are")
        if experiment.get("simple_arch"):
            raise ValueError("simple_arch models are not supported (no released model uses them)")
        if pitches is not None:
            values["pitches"] = list(pitches)
        return cls(**values)


def load_json(path) -> dict:
    with open(path, "r", encoding="utf-8") as fp:
        return json.load(fp)
