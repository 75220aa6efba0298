# The two commands of the README. Both run the set-up first (idempotent, seconds when done).
VPD := .venv/bin/vpd

.PHONY: setup demo test test-fast lint bench clean

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

test-fast: setup
	.venv/bin/pytest -q tests/fast

bench: setup
	.venv/bin/python -m bench.lab_times

# ruff and mypy on the paths pyproject.toml lists (also the first step of `make test`).
lint: setup
	bash scripts/lint.sh

# Removes build and tool artefacts (egg-info, __pycache__, pytest/mypy/ruff/hypothesis caches,
# build/). Keeps .venv (make setup reuses it) and everything vpd or the lab wrote elsewhere.
clean:
	rm -rf build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
