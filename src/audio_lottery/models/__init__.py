"""Speech recognisers behind the common :class:`ASRModel` interface."""

from audio_lottery.models.base import ASRModel
from audio_lottery.models.registry import MODEL_NAMES, build_model, register_model
from audio_lottery.models.ds2 import DeepSpeech2  # noqa: E402  (registers "ds2")
from audio_lottery.models.rnnt import RNNTransducer  # noqa: E402,F401  (registers "rnnt")
from audio_lottery.models.conformer import ConformerCTC  # noqa: E402,F401  (registers "conformer")
from audio_lottery.models.transformer import TransformerASR  # noqa: E402,F401  (registers "transformer")
from audio_lottery.models.whisper import WhisperASR  # noqa: E402,F401  (registers "whisper")

__all__ = ["ASRModel", "DeepSpeech2", "MODEL_NAMES", "build_model", "register_model"]
