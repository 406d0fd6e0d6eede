# Two entry points do all the set-up on a fresh machine:
#   make run    install, fetch the weights, run the daemon on the embedded config (./hot → ./out)
#   make test   install, fetch the weights, run ruff, mypy and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install weights run test lint browser console-screenshots gpu-check gpu-wheels bench-large bench-large-profiles bench-throughput bench-quality bench-faces bench-fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: 2.13.0 is the local CPU build; any other version pulls GBs of CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

weights/manifest.json: | $(STAMP)
	$(BIN)/hotmatte weights fetch --dir weights

weights: weights/manifest.json

run: install weights
	# The daemon never creates a missing input folder (it could be an unmounted share); the demo one is local.
	mkdir -p hot
	$(BIN)/hotmatte run

lint: install
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/mypy

# The console's browser tests drive Debian's chromium (Playwright's own download cannot work here).
browser:
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium chromium-driver)

# The README's console pictures: taken by the browser tests, copied from their artefacts.
console-screenshots: install weights browser
	$(BIN)/pytest -q tests/console/test_overview.py tests/console/test_failures.py tests/console/test_review.py tests/console/test_tryout.py
	mkdir -p docs/console
	cp tests/artifacts/console/overview.png tests/artifacts/console/failures.png tests/artifacts/console/files.png \
	   tests/artifacts/console/review.png tests/artifacts/console/try.png tests/artifacts/console/batch.png docs/console/

test: install weights lint browser
	$(BIN)/pytest

bench-large: install weights
	$(BIN)/python bench/large.py

bench-throughput: install weights
	$(BIN)/python bench/throughput.py

bench-large-profiles: install weights
	$(BIN)/python bench/large.py --profiles portrait,product,complex_background

bench-quality: install weights
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/quality.py

# opencv 4 (for its Haar cascades) lives in its own venv: the project uses opencv 5.
bench-faces: install
	test -x bench/.venv-cv4/bin/python || ($(PYTHON) -m venv bench/.venv-cv4 && \
	  bench/.venv-cv4/bin/pip install --quiet "opencv-python-headless<5" numpy scikit-image pillow matplotlib)
	$(BIN)/python bench/faces.py --haar-python bench/.venv-cv4/bin/python

# Damaged files through every reader (seeded; same seed = same files): counts per format and
# outcome class go into bench/results/fuzz.json under LABEL.
FUZZ_CASES ?= 20000
FUZZ_SEED ?= 1
FUZZ_LABEL ?= latest
bench-fuzz: install
	$(BIN)/python bench/fuzz.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --label $(FUZZ_LABEL)

# One prepared check for a GPU machine, within 8 minutes, installing nothing (no network there):
# the CUDA tests, model-only images/s at 1024² for batches 1-16 (eager / CUDA graphs /
# torch.compile), end to end as a fraction of it, and the crop pass. Uses this venv if there is
# one, else the machine's python3 (which must hold torch with CUDA). Real weights in two parts:
# make gpu-check GPU_CHECK_ARGS="--weights-parts w.part1 w.part2"; without, random weights (said).
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
GPU_CHECK_ARGS ?=
gpu-check:
	timeout 480 $(GPU_PYTHON) bench/gpu_check.py $(GPU_CHECK_ARGS)

# The wheels gpu-check needs on the lent GPU machine (no registry there): cp312 into .whl/.
gpu-wheels:
	bench/gpu_wheels.sh 3.12 .whl device
