# kdcompress — every set-up step lives here, so a fresh machine needs only `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
KD := $(VENV)/bin/kdcompress
TORCH_PIN := torch==2.13.0
FMNIST_DIR := /usr/share/datasets/fashion-mnist
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: install data demo test test-all dist bench bench-baselines bench-backends bench-harness bench-check bench-proxies bench-search bench-search-settings bench-search-speed teacher clean

# Debian's Fashion-MNIST (idx files); installed only when missing, so a second run is a no-op.
data:
	@if [ ! -e $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] && [ ! -e $(FMNIST_DIR)/train-images-idx3-ubyte ]; then \
		echo "installing Debian package dataset-fashion-mnist"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

$(PY):
	python3 -m venv $(VENV)

# The stamp is rebuilt when pyproject.toml changes; torch is pinned to the CPU wheel that lies on disk
# (a bare `torch` would pull a multi-GB CUDA build).
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev,hf]'
	touch $(STAMP)

install: data $(STAMP)

demo: install
	$(KD) shrink teachers/fmnist_resnet.pt2 --profile demo --data fashion-mnist --out $(DEMO_OUT) --resume

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ''

# An sdist and a wheel in dist/ (profiles and combo weights are package data); built with the setuptools installed
# here, so no download. `pip install dist/kdcompress-*.whl` installs it like any package.
dist: install
	$(PY) -m build --no-isolation --outdir dist

bench: install
	$(PY) benchmarks/shrink_tradeoff.py

# Our front against the recipes users would use instead, under the README's protocol: the train-only teacher, the
# front profile, 3 seeds per side, picks on validation, verdicts over seeds (hours on 2 cores; resumable, saved after
# every seed) -> benchmarks/results/frontier.json
bench-baselines: install
	$(PY) benchmarks/vs_baselines.py

# Every artifact (fp32/fp16/int8 ONNX, AOTInductor, eager; GPU ones where present) of the teacher and the demo's
# student on every backend here: latency ratios and accuracy (a few minutes; runs the demo first if needed).
bench-backends: demo
	$(PY) benchmarks/backends.py

# `kdcompress check` on this machine: false alarms on no change, detection of 5/10/20 % slowdowns, each trial a
# fresh process, beside the stored-number way (about half an hour on 2 cores; resumable) -> check_power.json
bench-check: install
	$(PY) benchmarks/check_power.py

# Our latency harness against the simplest timed loop over the same onnxruntime session (about a minute).
bench-harness: install
	$(PY) benchmarks/harness_overhead.py

# Seed-to-seed repeatability of every zero-cost proxy (no training; about a minute per teacher init).
bench-proxies: install
	$(PY) benchmarks/proxy_repeatability.py --teacher-init random
	$(PY) benchmarks/proxy_repeatability.py --teacher-init trained --out benchmarks/results/proxy_repeatability_trained_teacher.json

# Does each proxy rank students as distillation does? Trains 24 students x (3 KD + 2 scratch seeds) on 2 cores,
# about 1.5-2 hours; resumable (re-run to continue), results written as they come. Run it in the background:
#   nohup make bench-search > bench-search.log 2>&1 &
bench-search: install
	$(PY) benchmarks/search_correlation.py
	$(PY) benchmarks/search_settings.py

# The same proof on two more settings (issue 13): DisWOT's home ground (the teacher's widths, stage depths varied;
# fresh over two seeds, and from the teacher's weights with extra blocks as identities or fresh) and the band's
# students distilled from the second teacher (VGG); then every setting side by side in search_correlation.json's
# `settings`. About 7 core-hours; resumable.
bench-search-settings: install
	$(PY) benchmarks/depth_space.py --inits random --seeds 0 1
	$(PY) benchmarks/depth_space.py --inits teacher teacher_fresh --seeds 0
	$(PY) benchmarks/search_correlation.py --teacher teachers/fmnist_vgg.pt2 --scratch-seeds 0
	$(PY) benchmarks/search_settings.py

# Proxy throughput and the wall time of a 1000-evaluation evolution (a few minutes).
bench-search-speed: install
	$(PY) benchmarks/search_speed.py

# Re-train the shipped teachers (seeded): the ResNet about an hour on 2 cores, the VGG about 20 minutes on one.
teacher: install
	$(PY) teachers/train_fmnist.py --out teachers/fmnist_resnet.pt2
	$(PY) teachers/train_fmnist.py --space vgg --out teachers/fmnist_vgg.pt2

clean:
	rm -rf runs build *.egg-info .pytest_cache
