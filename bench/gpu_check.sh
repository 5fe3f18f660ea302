#!/usr/bin/env bash
# One training step and one lottery level of configs/ds2_paper.yaml and configs/conformer_paper.yaml,
# on a small corpus this script synthesises itself; prints step time, peak GPU memory and
# utterances per second, and writes docs/bench_gpu_check.md (see bench/gpu_check.py for options).
#
#   bench/gpu_check.sh                  # GPU machine (needs a CUDA build of torch in the venv)
#   bench/gpu_check.sh --device cpu     # dry run with tiny settings, a few minutes on CPU
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
exec "$PY" "$ROOT/bench/gpu_check.py" "$@"
