"""Pruning: masks, mask strategies and MAC counting."""

from audio_lottery.pruning.macs import effective_macs, macs_per_second
from audio_lottery.pruning.mask import Mask, MaskEnforcer, select_prunable
from audio_lottery.pruning.strategies import (
    STRATEGIES,
    get_strategy,
    global_magnitude,
    layerwise_magnitude,
    random_prune,
    register_strategy,
    remaining_after,
)

__all__ = [
    "Mask",
    "MaskEnforcer",
    "select_prunable",
    "STRATEGIES",
    "get_strategy",
    "register_strategy",
    "global_magnitude",
    "layerwise_magnitude",
    "random_prune",
    "remaining_after",
    "effective_macs",
    "macs_per_second",
]
