"""Noise: synthetic noises, packaged and babble sources, the split noise bank, mixing at an SNR."""
