# jtm: `make demo` runs the pipeline on the embedded demo corpus; `make test` runs the checks.
# `make demo` builds .venv from requirements.lock (what the pipeline runs); the tests, linters and
# docs add requirements-dev.lock's tools. A second run reinstalls nothing (docs/install.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export PATH := $(abspath $(BIN)):$(PATH)
# Don't let a user's MLflow settings redirect the demo's or the tests' runs.
unexport MLFLOW_TRACKING_URI

.PHONY: install install-dev lock-check demo demo-fonts study test check lint docs dvc-deps mutate breaks bench-resample bench-cpc bench-loader bench-tracking bench-gpu bench-decode bench-ingest bench-scale profile-cpc lock clean

install: $(STAMP)

install-dev: $(DEV_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Hash-checked, exact versions from a resolver's lock (`make lock`; markers keep the CUDA stack
# to Linux). --no-deps: the lock is complete, and tinysoundfont's PyAudio (live playback only,
# left out of the lock by overrides.txt) would need portaudio headers to build.
$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	touch $@

# `dvc checkout --relink`: outputs whose bytes DVC had cached already (a rerun that reproduced
# them) are kept as copies by `dvc repro`; relinked, the cache holds no second copy.
demo: install
	@test -d .dvc || dvc init --no-scm --quiet
	dvc repro
	dvc checkout --relink --quiet
	jtm summary

# The full recipe instead of the demo's 10-minute budget (docs: performance, "The demo's budget"):
# 1 500 pretraining steps per run, MLP probes beside the linear ones, end-to-end baselines on
# ensemble; as a DVC experiment, so `dvc exp show` lists it beside the workspace.
study: install
	dvc exp run -n study -S pretrain.steps=1500 -S 'downstream.probes=[linear,mlp]' \
		-S 'downstream.end_to_end_tasks=[ensemble]'
	dvc checkout --relink --quiet
	jtm summary

# The demo with Debian's GM SoundFonts as further timbres, one of the four held out (docs: data,
# "Two presets"); as a DVC experiment beside the workspace. Needs: apt-get install
# fluid-soundfont-gm musescore-general-soundfont-small opl3-soundfont
demo-fonts: install
	@test -d .dvc || dvc init --no-scm --quiet
	dvc exp run -n fonts -S 'demo.more_soundfonts=[fluid, musescore, opl3]' -S demo.held_out_soundfonts=1
	jtm summary

# dvc.yaml's code deps from the import graph (jtm/codedeps.py), and dvc.lock without the entries
# of stages that are gone (jtm/workflow.py); tests/test_dag.py fails when either is stale.
dvc-deps: install-dev
	python -c "from jtm.workflow import write_dvc_code; write_dvc_code('dvc.yaml')"
	python -c "from jtm.config import load_params; from jtm.workflow import prune_dvc_lock; \
		print('dropped from dvc.lock:', prune_dvc_lock(load_params('params.yaml')))"

# Mutation testing of the modules the study rests on (pyproject.toml's [tool.mutmut]); about an
# hour from scratch on 2 cores, then only what changed; not part of `make test`.
# `mutmut results` lists survivors, `mutmut show <name>` one's diff.
mutate: install-dev
	python -m pip install --quiet mutmut==3.8.1
	mutmut run --max-children 2
	mutmut results

# Each mechanism of the study broken on purpose, one at a time (tests/breaks.py): a test must
# fail (about 6 min; not part of `make test`).
breaks: install-dev
	python tests/breaks.py

lint: install-dev
	ruff check .
	ruff format --check .
	snakefmt --check Snakefile workflow/rules/
	snakemake --lint

# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or page fails.
docs: install-dev
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet

# Everything (what CI runs), on three pytest-xdist workers: a file's tests on one worker, in
# order; the engines' files first (tests/conftest.py), whose builds wait on processes as much as
# they compute. Needs the Debian packages .ci/run installs, and root (SLURM).
test: lint docs
	python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder

# The contributor tier: the unit tests marked `check` (statistics, models, loss, config, loaders),
# with Python alone: no Debian package, no root; under a minute.
check: install-dev
	python -m pytest -q -m check

bench-resample: install-dev
	python benchmarks/bench_resample.py

bench-cpc: install-dev
	python benchmarks/bench_cpc.py

# On a GPU machine. Needs torch (+ torchaudio) only: with no .venv (a bare GPU node) python3 as
# it is runs it (docs/performance.md, "On a GPU").
bench-gpu:
	PYTHONPATH=$(CURDIR) python3 benchmarks/bench_gpu.py

bench-decode: install-dev
	python benchmarks/bench_decode.py

bench-ingest: install-dev
	python benchmarks/bench_ingest.py

# The DAG at 1x, 4x and 16x the demo under dvc repro: per-stage time, memory, disk; projections to
# MusicNet (34 h) and 1 000 h (docs/performance.md, "At scale"). About 35 minutes on 2 cores.
bench-scale: install-dev
	python benchmarks/bench_scale.py

bench-loader: install-dev
	python benchmarks/bench_loader.py

# Needs the demo's data (make demo first).
bench-tracking: install-dev
	python benchmarks/bench_tracking.py

profile-cpc: install-dev
	python benchmarks/profile_cpc_step.py

# Both locks from pyproject.toml's ranges, by a resolver (uv), for every platform (markers),
# with hashes; the versions already locked are kept unless a range excludes them.
lock: install-dev
	uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--override overrides.txt -o requirements.lock
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes \
		--override overrides.txt -c requirements.lock -o requirements-dev.lock

# The runtime lock resolved for macOS on Apple silicon (no install): docs/install.md.
lock-check: install-dev
	python tools/lock_check.py --platform aarch64-apple-darwin

# Every output the pipeline writes, but the small results committed in git (results/metrics,
# results/pretrain's metrics and curves, results/ablation, results/levers, results/figures):
# `git status` stays clean (tests/test_install.py).
clean:
	rm -rf data/scores data/raw data/audio16k data/index data/ingest data/leakage data/cache results/checkpoints \
		results/embeddings results/cells results/downstream results/report.html results/report.md \
		logs .snakemake
	rm -f results/pretrain/*/model.pt results/pretrain/*/config.json
