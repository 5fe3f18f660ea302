# audio-lottery: set-up, demo and tests. Every target installs what it needs.
PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
CLI         := $(VENV)/bin/audio-lottery
DATA        ?= data/synth
RUNS        ?= runs
DEB_PACKAGES := python3-venv espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
                sox fortunes fortunes-min wordnet-base bible-kjv bible-kjv-text ufoai-sound openttd-opensfx \
                asterisk-core-sounds-en asterisk-core-sounds-en-g722
THREADS     ?= 2
EXTRAS      := test,onnx

.PHONY: setup lock demo test test-slow test-ci bench results clean

setup: $(VENV)/.stamp-pip .stamp-apt

# Debian packages: installed only when one is missing (idempotent).
.stamp-apt:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

# Python packages: every dependency pinned by constraints.txt (the versions the tests ran against;
# torch==2.13.0). A package that constraints.txt does not name yet is resolved freely: run `make lock`.
$(VENV)/.stamp-pip: pyproject.toml constraints.txt .stamp-apt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	# openai-whisper (EnglishTextNormalizer for scoring real speech): --no-deps since it declares
	# triton, which CPU use never needs; the modules it imports are in pyproject's dependencies.
	$(PY) -m pip install -q --no-deps openai-whisper==20250625
	@touch $@

# Regenerate constraints.txt from this virtual environment (not from a fresh resolution): every
# distribution that audio-lottery[$(EXTRAS)] requires, transitively, at its installed version; the
# project itself and packages nothing requires are left out. After adding a dependency to
# pyproject.toml: `make lock` (installs it, then pins it). To move a pin: delete its line,
# `.venv/bin/pip install -U NAME`, `make lock`, run the tests, commit both files.
lock: $(VENV)/.stamp-pip
	$(PY) tools/lock.py --extras $(EXTRAS) --out constraints.txt
	@touch $(VENV)/.stamp-pip

demo: setup
	OMP_NUM_THREADS=$(THREADS) $(PY) -m audio_lottery.demo --data $(DATA) --runs $(RUNS)

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

# CI (.ci/run): the fast and the slow suite in one session, the slowest tests listed.
test-ci: setup
	$(PY) -m pytest -m "slow or not slow" --durations=25

bench: setup
	$(PY) bench/run_all.py

# docs/results.md from docs/bench_*.json; DEMO_TIMINGS=runs/lottery_<hash>/demo_timings.json adds the demo's timings
results: setup
	$(PY) bench/make_results.py $(if $(DEMO_TIMINGS),--demo-timings $(DEMO_TIMINGS))

clean:
	rm -rf $(VENV) .stamp-apt build src/*.egg-info
