#!/usr/bin/env bash
# The README's main-job command: install mldeploy and deploy the iris example on the embedded default —
# the local target (Docker on this machine), no AWS account needed.
#   1. pip install . (a real wheel: ships runtime/ and templates/)
#   2. make sure a Docker engine answers (on Debian without one: scripts/test-infra.sh installs docker.io)
#   3. pick the base image: python:3.11-slim if it is present or can be pulled, else a local Debian-based
#      Python image built without any registry (machines with no access to Docker Hub)
#   4. make the example model, `mldeploy up --target local`, then `mldeploy predict` against it
# Leaves the container running on http://127.0.0.1:${PORT:-8080}; stop it with: docker rm -f mldeploy-iris
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
PORT="${PORT:-8080}"

echo "==> installing mldeploy"
"$PYTHON" -m pip install -q .

need_infra=0
if ! docker info >/dev/null 2>&1; then
    need_infra=1
elif [ -z "${MLDEPLOY_BASE_IMAGE:-}" ] && ! docker image inspect python:3.11-slim >/dev/null 2>&1 \
        && ! timeout 60 docker pull -q python:3.11-slim >/dev/null 2>&1; then
    need_infra=1
fi
if [ "$need_infra" = 1 ]; then
    echo "==> no Docker engine or no pullable python:3.11-slim: preparing the local engine and base image"
    bash scripts/test-infra.sh
    if ! docker image inspect python:3.11-slim >/dev/null 2>&1; then
        export MLDEPLOY_BASE_IMAGE="${MLDEPLOY_BASE_IMAGE:-${MLDEPLOY_TEST_BASE_IMAGE:-mldeploy-test/python:3.11-bookworm}}"
    fi
fi
echo "==> base image: ${MLDEPLOY_BASE_IMAGE:-python:3.11-slim}"

cd examples/iris-sklearn
echo "==> making the example model"
"$PYTHON" make_model.py
echo "==> mldeploy up --target local"
"$PYTHON" -m mldeploy up --target local --port "$PORT"
echo "==> mldeploy predict"
"$PYTHON" -m mldeploy predict --url "http://127.0.0.1:$PORT"
