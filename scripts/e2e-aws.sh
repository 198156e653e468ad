#!/usr/bin/env bash
# Opt-in smoke test against a REAL AWS account (costs a few cents; takes ~15-25 minutes):
#   up → predict over the ALB → canary 10 → promote → rollback → down, on examples/iris-sklearn,
# printing each step's time and, at the end, every resource still tagged mldeploy:app=<app> (must be none,
# via the Resource Groups Tagging API). Runs only with MLDEPLOY_E2E_AWS=1 and working credentials; otherwise it
# prints one "skipped" line and exits 0 (CI prints that line).
#   MLDEPLOY_E2E_AWS=1 AWS_PROFILE=sandbox AWS_REGION=us-east-1 scripts/e2e-aws.sh
# The example is copied to a temporary folder and renamed (app e2e-iris-<digits>), so a real deployment of iris is
# never touched. Optional: PYTHON (default python3). Use a sandbox account: it deploys, then deletes, a public ALB.
set -euo pipefail

if [ "${MLDEPLOY_E2E_AWS:-}" != "1" ]; then
    echo "skipped: set MLDEPLOY_E2E_AWS=1 (and AWS credentials) to run the real-account smoke test"
    exit 0
fi
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import boto3, sys; sys.exit(0 if boto3.Session().get_credentials() else 1)' 2>/dev/null; then
    echo "skipped: MLDEPLOY_E2E_AWS=1 but no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    exit 0
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
cp -R "$REPO/examples/iris-sklearn/." "$WORK/"
cd "$WORK"
APP="e2e-iris-$(( $(date +%s) % 1000000 ))"
sed -i "s/^name: iris$/name: $APP/" mldeploy.yaml
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
export AWS_REGION="$REGION" CI=true NO_COLOR=1
md() { "$PYTHON" -m mldeploy "$@"; }
declare -a TIMES=()
step() {  # step NAME CMD...: run, time, record
    local name="$1"; shift
    local t0=$SECONDS
    echo "==> $name"
    "$@"
    TIMES+=("$(printf '%-22s %5ds' "$name" $((SECONDS - t0)))")
}
cleanup() {
    local rc=$?
    if [ "$rc" != 0 ]; then
        echo "==> failed (exit $rc): tearing down"
        md down --yes --purge || true
    fi
    echo "==> step times"
    printf '  %s\n' "${TIMES[@]}"
    echo "==> resources left tagged mldeploy:app=$APP (must be none)"
    left=$("$PYTHON" - "$APP" <<'PY'
import sys, boto3
app = sys.argv[1]
pages = boto3.client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
    TagFilters=[{"Key": "mldeploy:app", "Values": [app]}])
ecs = boto3.client("ecs")
for page in pages:
    for r in page["ResourceTagMappingList"]:
        arn = r["ResourceARN"]
        # the tagging API lists deleted ECS clusters/services for a while: skip INACTIVE ones
        if ":cluster/" in arn and all(c["status"] == "INACTIVE" for c in ecs.describe_clusters(clusters=[arn])["clusters"]):
            continue
        if ":service/" in arn:
            cluster = arn.split(":service/", 1)[1].split("/")[0]
            try:
                if all(s["status"] == "INACTIVE" for s in ecs.describe_services(cluster=cluster, services=[arn])["services"]):
                    continue
            except ecs.exceptions.ClusterNotFoundException:
                continue
        if ":task-definition/" in arn:  # deleted revisions linger as DELETE_IN_PROGRESS
            status = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"].get("status")
            if status in ("INACTIVE", "DELETE_IN_PROGRESS"):
                continue
        print(arn)
PY
)
    if [ -n "$left" ]; then
        printf '%s\n' "$left" | sed 's/^/  /'
        echo "FAIL: resources left behind"
        exit 1
    fi
    echo "  none"
    exit "$rc"
}
trap cleanup EXIT

[ -f model.pkl ] || "$PYTHON" make_model.py
step "up" md up
URL=$(md status --json | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["url"])')
step "predict (ALB)" md predict --url "$URL"
sed -i 's/^  version: 1.0.0/  version: 1.0.1/' mldeploy.yaml  # the canary builds the next version
step "canary 10" md canary --percent 10
step "predict (canary 10%)" md predict --url "$URL"
step "promote" md promote --yes
step "rollback" md rollback --yes
step "down" md down --yes --purge
