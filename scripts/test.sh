#!/usr/bin/env bash
# The test suite: fast tests (libvirt's test:///default, pure logic) and lab tests
# (real libvirtd hosts in namespaces, real TCG guests). Lab tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lint.sh  # seconds: ruff and mypy before any test runs
if [ "$#" -gt 0 ]; then  # a selection (paths, -k, ...): one run, as asked
  exec .venv/bin/pytest -q -p no:cacheprovider tests "$@"
fi
# The fast tests share nothing, so they run on every core (pytest-xdist: 1.5 instead of 3.3 min on
# 2 cores); the lab tests share one lab and run one at a time.
.venv/bin/pytest -q -p no:cacheprovider -n auto tests/fast
exec .venv/bin/pytest -q -p no:cacheprovider tests/lab
