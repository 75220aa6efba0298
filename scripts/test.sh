#!/usr/bin/env bash
# The test suite: fast tests (libvirt's test:///default, pure logic) and lab tests
# (real libvirtd hosts in namespaces, real TCG guests). Lab tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lint.sh  # seconds: ruff and mypy before any test runs
exec .venv/bin/pytest -q -p no:cacheprovider tests "$@"
