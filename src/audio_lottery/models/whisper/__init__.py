"""The Whisper backbone (``model.name: whisper``): model, CTranslate2 weights reader, search."""

from audio_lottery.models.whisper.model import WhisperASR  # registers "whisper"

__all__ = ["WhisperASR"]
