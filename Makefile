# audio-lottery: set-up, demo and tests. Every target installs what it needs.
PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
CLI         := $(VENV)/bin/audio-lottery
DATA        ?= data/synth
RUNS        ?= runs
DEB_PACKAGES := python3-venv espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
                sox fortunes fortunes-min wordnet-base bible-kjv bible-kjv-text ufoai-sound openttd-opensfx
THREADS     ?= 2

.PHONY: setup demo test test-slow test-ci bench clean

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

$(VENV)/.stamp-pip: pyproject.toml .stamp-apt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,onnx]'
	@touch $@

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

clean:
	rm -rf $(VENV) .stamp-apt build src/*.egg-info
