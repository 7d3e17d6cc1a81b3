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

.PHONY: setup build quickstart test lint ci bench bench-peers doctor

## setup: create .venv with torch==$(TORCH_VERSION) when it is missing (reused when present)
setup: $(VENV)/.torch-$(TORCH_VERSION)

$(VENV)/.torch-$(TORCH_VERSION):
	@test -x $(VENV)/bin/python3 || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION) numpy
	@touch $@

## build: release build of the harness binary
build: setup
	$(CARGO) build --release --locked -p harness

## quickstart: the main job (see README)
quickstart: build
	$(HARNESS) doctor
	$(HARNESS) loss-check

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

## bench: criterion benches
bench: setup
	$(CARGO) bench --workspace --locked

## bench-peers: side-by-side comparisons against PyTorch / pytorch-metric-learning (installs them)
bench-peers: build
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
	$(VENV)/bin/python3 bench/peers/losses.py
