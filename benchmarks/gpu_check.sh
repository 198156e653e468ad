#!/usr/bin/env bash
# GPU check: build and serve examples/cnn-torch on this machine's GPU and print its throughput against the CPU.
#
#   bash benchmarks/gpu_check.sh            # on a machine with an NVIDIA GPU (nvidia-smi), Docker optional
#
# Where no GPU is visible (no nvidia-smi, or it lists no GPU) it prints one "skipped: …" line and exits 0.
# With Docker and the NVIDIA container toolkit it builds the GPU image (aws.compute: ec2, aws.gpus: 1: the CUDA
# base image.cuda_base and onnxruntime-gpu) and runs it twice, with `--gpus all` and without (the same image on
# the CPU). Without Docker it serves the packaged model with this machine's Python (the CUDA provider when the
# installed onnxruntime has it, i.e. onnxruntime-gpu), once with the GPU visible and once with
# CUDA_VISIBLE_DEVICES="". Each run prints /ready's "providers" and the throughput of 32-image batches.
# Optional: PYTHON (default python3), SECONDS_PER_RUN (default 10), BATCH (default 32), CONCURRENCY (default 4).
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "skipped: no NVIDIA GPU visible (nvidia-smi not found or lists no GPU); the GPU check needs a GPU machine"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
RUN_S="${SECONDS_PER_RUN:-10}"
BATCH="${BATCH:-32}"
CONC="${CONCURRENCY:-4}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
CONTAINERS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    for c in "${CONTAINERS[@]:-}"; do [ -n "$c" ] && docker rm -f "$c" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" NO_COLOR=1

echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
cp -R "$REPO/examples/cnn-torch/." "$WORK/"
cd "$WORK"
"$PYTHON" make_model.py >/dev/null
CUDA_BASE="$("$PYTHON" -c 'from mldeploy.config.schema import ImageSection as I; print(I().cuda_base)')"
cat >> mldeploy.yaml <<EOF
environments:
  gpu:   # the example pins image.base, so the overlay names the CUDA base (image.cuda_base) itself
    image: {base: "$CUDA_BASE"}
    aws: {compute: ec2, instance_type: g5.xlarge, gpus: 1, cpu: 2048, memory: 8192}
EOF
"$PYTHON" -m mldeploy package >/dev/null

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() {  # wait_ready URL → prints /ready's JSON once it answers 200
    "$PYTHON" - "$1" <<'EOF'
import json, sys, time, urllib.request
url = sys.argv[1] + "/ready"
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            print(json.dumps(json.load(r).get("providers")))
            sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit("not ready after 300 s: " + url)
EOF
}

load() {  # load URL → prints images/s (BATCH-image npy batches, CONC clients, RUN_S seconds)
    "$PYTHON" - "$1" "$RUN_S" "$BATCH" "$CONC" <<'EOF'
import io, sys, threading, time, urllib.request
import numpy as np
url, seconds, batch, conc = sys.argv[1] + "/predict", float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
buf = io.BytesIO()
np.save(buf, np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32))
body, done, errors = buf.getvalue(), [0], [0]
lock = threading.Lock()
def worker(end):
    while time.monotonic() < end:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-npy"})
        try:
            urllib.request.urlopen(req, timeout=60).read()
            with lock: done[0] += 1
        except Exception:
            with lock: errors[0] += 1
for _ in range(2):  # warm-up
    urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-npy"}),
                           timeout=120).read()
end = time.monotonic() + seconds
threads = [threading.Thread(target=worker, args=(end,)) for _ in range(conc)]
t0 = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.monotonic() - t0
print(f"{done[0] * batch / elapsed:.1f} {done[0]} {errors[0]}")
EOF
}

declare -A RESULT
run_case() {  # run_case NAME URL
    local providers numbers
    providers="$(wait_ready "$2")"
    numbers="$(load "$2")"
    read -r ips reqs errs <<<"$numbers"
    RESULT[$1]="$ips"
    printf '%-4s providers=%s  %8s images/s  (%s batches of %s, %s errors)\n' "$1" "$providers" "$ips" "$reqs" \
        "$BATCH" "$errs"
}

if command -v docker >/dev/null 2>&1 && docker info 2>/dev/null | grep -qi nvidia; then
    echo "mode: docker image (aws.gpus: 1 on $CUDA_BASE)"
    "$PYTHON" -m mldeploy build --env gpu
    IMAGE="mldeploy/cnn-gpu:0.1.0"
    for name in gpu cpu; do
        port="$(free_port)"
        flags=(); [ "$name" = gpu ] && flags=(--gpus all)
        cid="$(docker run -d "${flags[@]}" -p "127.0.0.1:$port:8080" "$IMAGE")"
        CONTAINERS+=("$cid")
        run_case "$name" "http://127.0.0.1:$port"
        docker rm -f "$cid" >/dev/null
    done
else
    echo "mode: host python ($("$PYTHON" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'))"
    ARTIFACT="$WORK/.mldeploy/default/artifact"
    for name in gpu cpu; do
        port="$(free_port)"
        if [ "$name" = gpu ]; then vis="${CUDA_VISIBLE_DEVICES:-0}"; else vis=""; fi
        CUDA_VISIBLE_DEVICES="$vis" "$PYTHON" -m runtime --model-dir "$ARTIFACT" --host 127.0.0.1 --port "$port" \
            >"$WORK/server-$name.log" 2>&1 &
        PIDS+=("$!")
        run_case "$name" "http://127.0.0.1:$port"
        kill "${PIDS[-1]}" 2>/dev/null || true
        wait "${PIDS[-1]}" 2>/dev/null || true
    done
fi
"$PYTHON" -c "import sys; g, c = float(sys.argv[1]), float(sys.argv[2]); print(f'gpu/cpu throughput: {g / c:.1f}x' if c else 'cpu: no throughput')" \
    "${RESULT[gpu]}" "${RESULT[cpu]}"
