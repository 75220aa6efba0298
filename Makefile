# The two commands of the README. Both run the set-up first (idempotent, seconds when done).
VPD := .venv/bin/vpd

.PHONY: setup demo test test-fast bench clean

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
