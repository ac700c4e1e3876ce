# jtm: `make demo` runs the pipeline on the embedded demo corpus; `make test` runs the checks.
# Both build .venv from requirements.lock on first use (a second run reinstalls nothing).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
# Don't let a user's MLflow settings redirect the demo's or the tests' runs.
unexport MLFLOW_TRACKING_URI

.PHONY: install demo demo-fonts study test check lint docs dvc-deps mutate breaks bench-resample bench-cpc bench-loader bench-tracking bench-gpu bench-decode bench-ingest profile-cpc lock clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# --no-deps: the lock is complete, and tinysoundfont's PyAudio (live playback only) would need
# portaudio headers to build.
$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: install
	@test -d .dvc || dvc init --no-scm --quiet
	dvc repro
	jtm summary

# The full recipe instead of the demo's 10-minute budget (docs: performance, "The demo's budget"):
# 1 500 pretraining steps per run, MLP probes beside the linear ones, end-to-end baselines on
# ensemble; as a DVC experiment, so `dvc exp show` lists it beside the workspace.
study: install
	dvc exp run -n study -S pretrain.steps=1500 -S 'downstream.probes=[linear,mlp]' \
		-S 'downstream.end_to_end_tasks=[ensemble]'
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
dvc-deps: install
	python -c "from jtm.workflow import write_dvc_code; write_dvc_code('dvc.yaml')"
	python -c "from jtm.config import load_params; from jtm.workflow import prune_dvc_lock; \
		print('dropped from dvc.lock:', prune_dvc_lock(load_params('params.yaml')))"

# Mutation testing of the modules the study rests on (pyproject.toml's [tool.mutmut]); about an
# hour from scratch on 2 cores, then only what changed; not part of `make test`.
# `mutmut results` lists survivors, `mutmut show <name>` one's diff.
mutate: install
	python -m pip install --quiet mutmut==3.8.1
	mutmut run --max-children 2
	mutmut results

# Each mechanism of the study broken on purpose, one at a time (tests/breaks.py): a test must
# fail (about 6 min; not part of `make test`).
breaks: install
	python tests/breaks.py

lint: install
	ruff check .
	ruff format --check .
	snakefmt --check Snakefile workflow/rules/
	snakemake --lint

# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or page fails.
docs: install
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet

# Everything (what CI runs), on three pytest-xdist workers: a file's tests on one worker, in
# order; the engines' files first (tests/conftest.py), whose builds wait on processes as much as
# they compute. Needs the Debian packages .ci/run installs, and root (SLURM).
test: lint docs
	python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder

# The contributor tier: the unit tests marked `check` (statistics, models, loss, config, loaders),
# with Python alone: no Debian package, no root; under a minute.
check: install
	python -m pytest -q -m check

bench-resample: install
	python benchmarks/bench_resample.py

bench-cpc: install
	python benchmarks/bench_cpc.py

# On a GPU machine. Needs torch (+ torchaudio) only: with no .venv (a bare GPU node) python3 as
# it is runs it (docs/performance.md, "On a GPU").
bench-gpu:
	PYTHONPATH=$(CURDIR) python3 benchmarks/bench_gpu.py

bench-decode: install
	python benchmarks/bench_decode.py

bench-ingest: install
	python benchmarks/bench_ingest.py

bench-loader: install
	python benchmarks/bench_loader.py

# Needs the demo's data (make demo first).
bench-tracking: install
	python benchmarks/bench_tracking.py

profile-cpc: install
	python benchmarks/profile_cpc_step.py

# Regenerate the lock from the current venv (after changing dependencies deliberately).
lock: install
	python -m pip freeze --all --exclude-editable | grep -v '^-e' > requirements.lock

# Every output the pipeline writes, but the small results committed in git (results/metrics,
# results/pretrain's metrics and curves, results/ablation): `git status` stays clean.
clean:
	rm -rf data/scores data/raw data/audio16k data/index data/ingest data/leakage data/cache results/checkpoints \
		results/embeddings results/cells results/downstream results/report.html results/report.md \
		results/figures logs .snakemake
	rm -f results/pretrain/*/model.pt results/pretrain/*/config.json
