"""``python -m audio_lottery.cli`` (and ``torchrun -m audio_lottery.cli``): the audio-lottery command."""

import sys

from audio_lottery.cli import main

sys.exit(main())
