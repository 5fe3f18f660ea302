"""The training input pipeline: features (log-mel, linear, Whisper), tokenizers, datasets and batching,
SpecAugment."""

# the registering modules (feature front-ends, tokenizers): importing any module of the pipeline,
# or config.discover_plugins(), registers them all
from audio_lottery.data.pipeline import features, tokenizers, whisper_features, whisper_tokenizer  # noqa: F401,E402
