"""Speech recognisers behind the common :class:`ASRModel` interface."""

from audio_lottery.models.base import ASRModel
from audio_lottery.models.registry import MODEL_NAMES, build_model, register_model
from audio_lottery.models.ds2 import DeepSpeech2  # noqa: E402  (registers "ds2")

__all__ = ["ASRModel", "DeepSpeech2", "MODEL_NAMES", "build_model", "register_model"]
