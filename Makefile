# Two entry points (see README): `make demo` runs the main job, `make test` runs the checks.
# Each creates the virtual environment .venv when needed; the CPU build of torch goes in first, so that the
# project's torch range is already met and pip never pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
# The kdiff-* peers' library, installed without its dependencies: its samplers need only torch, scipy, torchsde,
# tqdm and torchdiffeq, where its full dependency list (torchvision, kornia, CLIP, wandb, ...) is far too heavy.
KDIFF ?= k-diffusion==0.1.1.post1 torchdiffeq==0.2.5
BIN := $(VENV)/bin
OUT ?= out
WORKERS ?= 2
TEST_WORKERS ?= 2

.PHONY: demo test setup clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(KDIFF)
	touch $@

setup: $(BIN)/.installed

# The default solver comparison: every solver × budgets × 3 seeds × exact and trained score, resumable (a rerun
# skips finished runs), then the report in $(OUT)/report/index.html.
demo: $(BIN)/.installed
	mkdir -p $(OUT)
	$(BIN)/sdebench sweep configs/default.toml --store $(OUT)/runs.db --workers $(WORKERS)
	$(BIN)/sdebench report --store $(OUT)/runs.db --out $(OUT)/report

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -n $(TEST_WORKERS)

clean:
	rm -rf $(VENV) $(OUT)
