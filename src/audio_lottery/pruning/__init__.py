"""Pruning: masks, mask strategies (unstructured and structured), channel groups and MAC counting."""

from audio_lottery.pruning.macs import effective_macs, macs_per_second
from audio_lottery.pruning.mask import Mask, MaskEnforcer, select_prunable
from audio_lottery.pruning.strategies import (
    STRATEGIES,
    get_strategy,
    global_magnitude,
    lamp,
    lamp_scores,
    layerwise_magnitude,
    random_prune,
    register_strategy,
    remaining_after,
    strategy_options,
)
from audio_lottery.pruning.structured import (  # registers block, nm, channel
    block_prune,
    channel_prune,
    convert_ticket,
    nm_prune,
)

__all__ = [
    "Mask",
    "MaskEnforcer",
    "select_prunable",
    "STRATEGIES",
    "get_strategy",
    "register_strategy",
    "global_magnitude",
    "lamp",
    "lamp_scores",
    "layerwise_magnitude",
    "random_prune",
    "remaining_after",
    "block_prune",
    "nm_prune",
    "channel_prune",
    "convert_ticket",
    "strategy_options",
    "effective_macs",
    "macs_per_second",
]
