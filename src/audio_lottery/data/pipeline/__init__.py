"""The training input pipeline: features (log-mel, linear, Whisper), tokenizers, datasets and batching,
SpecAugment."""
