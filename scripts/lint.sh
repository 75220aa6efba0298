#!/usr/bin/env bash
# The lint step of the fast stage: ruff (style, bugbear, import order) and mypy, each on the
# paths pyproject.toml lists ([tool.ruff] extend-exclude says what ruff skips for now,
# [tool.mypy] files what mypy checks). Run by scripts/test.sh before pytest; `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VPD_VENV:-.venv}"
"$venv/bin/ruff" check --quiet
"$venv/bin/mypy"
