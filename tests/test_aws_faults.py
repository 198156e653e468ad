"""Faults: throttling is retried, an error or Ctrl-C in the middle of apply is completed by the next `up`,
and the `iam-policy` output is enough (and necessary) under moto's IAM enforcement.

Faults are injected by a small HTTP proxy in front of the moto server (real botocore retry logic, real
subprocess), not by hooks in the product.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mldeploy.errors import ExitCode
from tests import infra
from tests.test_aws_helpers import Project

IMAGE = "registry.example/demo:1"


class FaultProxy:
    """Forwards to moto; ``faults[op]`` is a list of actions for the next requests of that operation:
    ``("error", http_status, code)`` answers an AWS error, ``("delay", seconds)`` stalls before forwarding."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlparse(upstream)
        self.faults: dict[str, list[tuple]] = {}
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target")
                op = target.rsplit(".", 1)[-1] if target else \
                    urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
                proxy.seen.append(op)
                queue = proxy.faults.get(op) or []
                action = queue.pop(0) if queue else None
                if action and action[0] == "delay":
                    time.sleep(action[1])
                elif action and action[0] == "error":
                    _, status, code = action
                    if target:
                        payload = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
                        ctype = "application/x-amz-json-1.1"
                    else:
                        payload = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected "
                                   f"{code}</Message></Error><RequestId>1</RequestId></ErrorResponse>").encode()
                        ctype = "text/xml"
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("x-amzn-ErrorType", code)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxied(tmp_path, aws, moto_server):
    proxy = FaultProxy(moto_server.url)
    env = dict(aws, AWS_ENDPOINT_URL=proxy.url)
    yield Project(tmp_path, env), proxy
    proxy.close()


def test_throttling_is_retried(proxied):
    project, proxy = proxied
    proxy.faults = {"DescribeClusters": [("error", 400, "ThrottlingException")] * 2,
                    "CreateLoadBalancer": [("error", 400, "Throttling")]}
    r = project.run("up", "--image", IMAGE, "--no-wait", env={"AWS_MAX_ATTEMPTS": "5"})
    assert r.rc == 0, r.stderr
    # botocore retried transparently: each operation was called once by mldeploy, more often on the wire
    assert r.mutating.count("CreateLoadBalancer") == 1
    assert proxy.seen.count("CreateLoadBalancer") == 2
    assert proxy.seen.count("DescribeClusters") >= 3


def test_throttling_beyond_the_retry_budget_is_a_clear_error(proxied):
    project, proxy = proxied
    proxy.faults = {"DescribeClusters": [("error", 400, "ThrottlingException")] * 10}
    r = project.run("plan", env={"AWS_MAX_ATTEMPTS": "2"})
    assert r.rc == int(ExitCode.AWS)
    assert "throttling ecs:DescribeClusters" in r.stderr and "AWS_RETRY_MODE=adaptive" in r.stderr


def test_error_mid_apply_then_rerun_converges(proxied, moto_server):
    project, proxy = proxied
    proxy.faults = {"CreateService": [("error", 400, "InvalidParameterException")]}
    r = project.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == int(ExitCode.AWS), r.stderr
    assert "ecs service demo" in r.stderr and "injected InvalidParameterException" in r.stderr
    assert "run the command again" in r.stderr
    ecs = moto_server.client("ecs")
    assert ecs.describe_services(cluster="demo", services=["demo"])["services"] == []
    assert ecs.describe_task_definition(taskDefinition="demo")["taskDefinition"]["revision"] == 1

    again = project.run("up", "--image", IMAGE, "--no-wait")
    assert again.rc == 0, again.stderr
    # only what was missing is created; nothing finished before is touched again
    assert "CreateService" in again.mutating
    for op in ("CreateLoadBalancer", "CreateCluster", "CreateRole", "RegisterTaskDefinition", "CreateTargetGroup"):
        assert op not in again.mutating
    assert project.run("up", "--image", IMAGE, "--no-wait").mutating == []


def test_ctrl_c_mid_apply_then_rerun_converges(proxied):
    project, proxy = proxied
    proxy.faults = {"CreateListener": [("delay", 5)]}
    env = dict(project.env, MLDEPLOY_API_LOG=str(project.root / "api.jsonl"))
    proc = subprocess.Popen([sys.executable, "-m", "mldeploy", "up", "--image", IMAGE, "--no-wait"],
                            cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=infra.interruptible)
    deadline = time.monotonic() + 60
    while "CreateListener" not in proxy.seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "CreateListener" in proxy.seen
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == int(ExitCode.INTERRUPTED), err
    assert "interrupted" in err, err
    assert "Traceback" not in err, err

    r = project.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == 0, r.stderr
    assert "CreateLoadBalancer" not in r.mutating and "CreateService" in r.mutating
    assert project.run("plan", "--json").json["changes"] == 0


# ------------------------------------------------------------------------------------------- IAM enforcement


def _moto_policy(policy: dict) -> dict:
    """moto evaluates IAM actions only (every request's resource is "*", conditions on absent keys fail) and
    names CloudWatch and the tagging API by their signing names; adapt the document to that, action list intact."""
    rename = {"cloudwatch:": "monitoring:", "tag:": "tagging:"}
    out = []
    for st in policy["Statement"]:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        fixed = []
        for a in actions:
            for old, new in rename.items():
                if a.startswith(old):
                    a = new + a[len(old):]
            fixed.append(a)
        out.append({"Effect": "Allow", "Action": fixed, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": out}


@pytest.fixture(scope="module")
def enforcing_moto():
    with infra.MotoServer(iam_enforcement=True) as server:
        yield server


def _user_env(server: infra.MotoServer, name: str, policy: dict) -> dict[str, str]:
    with server.auth_disabled():
        iam = server.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="mldeploy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
    env = infra.aws_env(server.url)
    env.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    return env


def test_iam_policy_is_sufficient_and_each_action_matters(tmp_path, enforcing_moto):
    enforcing_moto.reset()
    printed = subprocess.run([sys.executable, "-m", "mldeploy", "iam-policy"], capture_output=True, text=True,
                             cwd=tmp_path, env=dict(os.environ, NO_COLOR="1"))
    assert printed.returncode == 0, printed.stderr
    policy = json.loads(printed.stdout)
    actions = {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str)
                                                        else st["Action"])}
    assert "ecs:CreateService" in actions and "iam:PassRole" in actions and "ecs:*" not in actions
    roles = next(st for st in policy["Statement"] if st["Sid"] == "MldeployRoles")
    assert all(":role/" in r for r in roles["Resource"])  # role management is scoped, not "*"

    full = _moto_policy(policy)
    (tmp_path / "ok").mkdir()
    project = Project(tmp_path / "ok", _user_env(enforcing_moto, "deployer", full))
    r = project.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == 0, r.stderr
    assert project.run("status").rc == 0
    r = project.run("down", "--yes", "--purge")
    assert r.rc == 0, r.stderr

    # the same policy without one action fails, naming that action
    missing = "elasticloadbalancing:CreateTargetGroup"
    reduced = {"Version": full["Version"], "Statement": [
        {**st, "Action": [a for a in st["Action"] if a != missing]} for st in full["Statement"]]}
    (tmp_path / "denied").mkdir()
    denied = Project(tmp_path / "denied", _user_env(enforcing_moto, "limited", reduced))
    r = denied.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == int(ExitCode.AWS)
    assert f"access denied: the caller may not perform {missing}" in r.stderr, r.stderr
    assert "mldeploy iam-policy" in r.stderr
    with contextlib.suppress(Exception):
        enforcing_moto.reset()
