# Set-up and entry points. Every target installs what it needs on a fresh machine:
# libtorch comes from PyPI (torch==2.13.0, the version tch 0.26 is built for) into a git-ignored .venv.
SHELL := /bin/bash
VENV ?= .venv
TORCH_VERSION := 2.13.0
PYTHON ?= python3
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
CARGO ?= cargo
HARNESS := target/release/harness

# The regression check uses the test build's binary (dependencies optimised, see Cargo.toml), so CI
# compiles the workspace once; its committed baseline was made by the same build.
CI_HARNESS := target/debug/harness

.PHONY: setup build quickstart quickstart-reference power power-reference plugins test lint bench bench-peers bench-peers-eval bench-peers-pipeline bench-peers-train doctor ci-regress ci-baseline

## setup: create .venv with torch==$(TORCH_VERSION) when it is missing (reused when present)
setup: $(VENV)/.torch-$(TORCH_VERSION)

$(VENV)/.torch-$(TORCH_VERSION):
	@test -x $(VENV)/bin/python3 || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION) numpy
	@touch $@

## build: release build of the harness binary
build: setup
	$(CARGO) build --release --locked -p harness

## quickstart: the main job: train every run of the quickstart sweeps (configs/quickstart.yaml, the K × τ
## study on the views data; configs/quickstart-images.yaml, the image study) into results/ (git-ignored;
## resumable), write their reports there, and compare them with the committed reference in reports/
QUICKSTART_SWEEPS := quickstart quickstart-images
quickstart: build
	$(HARNESS) doctor
	bash bench/quickstart/run.sh $(HARNESS) $(QUICKSTART_SWEEPS)
	@for s in $(QUICKSTART_SWEEPS); do bash bench/quickstart/agreement.sh $(HARNESS) reports/$$s results/$$s quickstart-reference; done

## quickstart-reference: make the fresh quickstart results the committed reference (review, then commit)
quickstart-reference: quickstart
	$(call adopt,$(QUICKSTART_SWEEPS))

## power: the K × τ study at the seeds its power target needs (a 2-point R@1 difference detected with
## 80% power at the Holm level): configs/power-d64.yaml (24 seeds) and configs/power-d512.yaml
## (10 seeds) into results/, their reports, and their comparison with reports/power-d64/ and
## reports/power-d512/. Takes over the records of `make quickstart`'s seeds 0–4 when results/quickstart/
## holds them (the same runs). About 17 minutes on 2 cores from nothing, 11 after `make quickstart`.
POWER_SWEEPS := power-d64 power-d512
power: build
	@for s in $(POWER_SWEEPS); do bash bench/quickstart/reuse.sh $(HARNESS) results/quickstart configs/$$s.yaml results/$$s; done
	bash bench/quickstart/run.sh $(HARNESS) $(POWER_SWEEPS)
	@for s in $(POWER_SWEEPS); do bash bench/quickstart/agreement.sh $(HARNESS) reports/$$s results/$$s power-reference; done

## power-reference: make the fresh power-study results the committed reference (review, then commit)
power-reference: power
	$(call adopt,$(POWER_SWEEPS))

# adopt: copy each named results folder's records into reports/NAME/ and report them there
define adopt
	for s in $(1); do \
	  rm -rf reports/$$s && mkdir -p reports/$$s && \
	  cp -r results/$$s/runs results/$$s/sweep.json reports/$$s/ && \
	  $(HARNESS) report reports/$$s -o reports/$$s/report.md || exit 1; \
	done
endef

## plugins: the loss plug-ins of plugins/ beside built-ins (configs/plugins.yaml) into results/plugins/ and its report
plugins: build
	$(HARNESS) sweep configs/plugins.yaml --results results/plugins
	$(HARNESS) report results/plugins -o results/plugins/report.md

## doctor: what the harness sees (versions, threads, CUDA)
doctor: build
	$(HARNESS) doctor

## test: every test of the workspace
test: setup
	$(CARGO) test --workspace --locked

## lint: formatting and clippy, warnings are errors
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## ci-regress: run configs/ci.yaml and fail on a significant move (metrics, diagnostics) against results/baselines/ci
ci-regress: setup
	$(CARGO) build --locked -p harness
	rm -rf target/ci-results
	$(CI_HARNESS) sweep configs/ci.yaml --results target/ci-results
	$(CI_HARNESS) regress --baseline results/baselines/ci --current target/ci-results -o target/ci-regress.md

## ci-baseline: refresh the committed CI baseline on purpose (then review and commit results/baselines/ci)
ci-baseline: setup
	$(CARGO) build --locked -p harness
	rm -rf results/baselines/ci
	$(CI_HARNESS) sweep configs/ci.yaml --results results/baselines/ci
	$(CI_HARNESS) report results/baselines/ci -o results/baselines/ci/report.md

## bench: criterion benches
bench: setup
	$(CARGO) bench --workspace --locked

## bench-peers: side-by-side comparisons against PyTorch / pytorch-metric-learning (installs them)
bench-peers: build
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
	$(VENV)/bin/python3 bench/peers/losses.py

## bench-peers-pipeline: image pipeline against torchvision + PIL (installs torchvision 0.28)
bench-peers-pipeline: build
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
	$(VENV)/bin/python3 bench/peers/pipeline.py

## bench-peers-train: training steps per second against PyTorch
bench-peers-train: build
	$(VENV)/bin/python3 bench/peers/train_step.py

## bench-peers-eval: harness eval against faiss + scikit-learn at SOP scale (about 15 minutes)
bench-peers-eval: build
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
	$(VENV)/bin/python3 bench/peers/eval.py --plusplus
