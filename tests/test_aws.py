"""End-to-end: the real `mldeploy` CLI as a subprocess against a moto server on 127.0.0.1.

moto answers the control plane but runs no tasks and serves no load balancer traffic: runningCount stays 0,
so these tests deploy with --no-wait (the wait loop is exercised in test_aws_errors.py against that fact) and
check the resources and the requests we sent rather than a live endpoint.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests import infra
from tests.test_aws_helpers import BASE_CONFIG, Project, tagged_arns

IMAGE = "registry.example/demo:1"


@pytest.fixture
def project(tmp_path, aws):
    return Project(tmp_path, aws)


def test_plan_up_noop_update_status_down(project, moto_server):
    c = moto_server.client

    # plan on empty: every resource to create, and planning mutates nothing
    r = project.run("plan", "--json")
    assert r.rc == 0, r.stderr
    plan = r.json
    kinds = {(s["kind"], s["action"]) for s in plan["steps"]}
    for kind in ("ecr repository", "iam role", "log group", "ecs cluster", "security group", "load balancer",
                 "target group", "listener", "task definition", "ecs service", "scalable target", "scaling policy",
                 "alarm", "dashboard", "outputs (ssm)"):
        assert (kind, "create") in kinds, kind
    assert plan["summary"]["no-op"] == 0 and plan["changes"] == len(plan["steps"])
    assert r.mutating == []
    assert any("NAT" in n for n in plan["notes"])

    # up from scratch
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr
    out = r.json
    assert out["url"].startswith("http://demo-") and out["url"].endswith(".elb.amazonaws.com")
    first_calls, first_mutating = len(r.calls), len(r.mutating)
    assert first_mutating >= 20

    ecs, elbv2, ec2 = c("ecs"), c("elbv2"), c("ec2")
    td = ecs.describe_task_definition(taskDefinition="demo", include=["TAGS"])
    tdef, container = td["taskDefinition"], td["taskDefinition"]["containerDefinitions"][0]
    assert (tdef["cpu"], tdef["memory"], tdef["revision"]) == ("512", "1024", 1)
    assert tdef["runtimePlatform"]["cpuArchitecture"] == "X86_64"
    assert container["image"] == IMAGE and container["stopTimeout"] == 30  # drain 25 s + margin
    assert "/ready" in container["healthCheck"]["command"][1]
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/mldeploy/demo/default"
    assert {t["key"]: t["value"] for t in td["tags"]}["mldeploy:app"] == "demo"
    assert tdef["executionRoleArn"].endswith(":role/demo-exec") and "taskRoleArn" not in tdef

    # the service request (moto's describe_services omits deploymentConfiguration/capacity providers)
    (create,) = r.params("CreateService")
    assert create["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert create["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    assert create["healthCheckGracePeriodSeconds"] == 60 and create["desiredCount"] == 2
    assert create["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"

    tg = elbv2.describe_target_groups(Names=["demo-tg"])["TargetGroups"][0]
    assert (tg["TargetType"], tg["HealthCheckPath"], tg["Port"]) == ("ip", "/ready", 8080)
    attrs = {a["Key"]: a["Value"] for a in
             elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    assert attrs["deregistration_delay.timeout_seconds"] == "30"
    lb = elbv2.describe_load_balancers(Names=["demo"])["LoadBalancers"][0]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert listener["Port"] == 80 and listener["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]

    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["demo-alb", "demo-tasks"]}])["SecurityGroups"]}
    alb_sg, task_sg = groups["demo-alb"], groups["demo-tasks"]
    assert [(p["FromPort"], [x["CidrIp"] for x in p["IpRanges"]]) for p in alb_sg["IpPermissions"]] == \
        [(80, ["0.0.0.0/0"])]
    (rule,) = task_sg["IpPermissions"]
    assert rule["FromPort"] == 8080 and rule["IpRanges"] == []
    assert [g["GroupId"] for g in rule["UserIdGroupPairs"]] == [alb_sg["GroupId"]]

    repo = c("ecr").describe_repositories(repositoryNames=["demo"])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert json.loads(c("ecr").get_lifecycle_policy(repositoryName="demo")["lifecyclePolicyText"])["rules"]
    (group,) = c("logs").describe_log_groups(logGroupNamePrefix="/mldeploy/demo/default")["logGroups"]
    assert group["retentionInDays"] == 30
    aas = c("application-autoscaling")
    (target,) = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    policies = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == ["demo-cpu"]
    alarms = c("cloudwatch").describe_alarms(AlarmNamePrefix="mldeploy-demo-")["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == ["mldeploy-demo-5xx-rate", "mldeploy-demo-p99-latency",
                                                       "mldeploy-demo-unhealthy-hosts"]
    p99 = next(a for a in alarms if a["AlarmName"].endswith("p99-latency"))
    assert p99["Threshold"] == 1.0 and p99["ExtendedStatistic"] == "p99"
    # the stable 5xx rate counts the stable target group's targets only; the LB's own 5xx has no TargetGroup
    rate = next(a for a in alarms if a["AlarmName"].endswith("5xx-rate"))
    dims = {m["Id"]: sorted(d["Name"] for d in m["MetricStat"]["Metric"]["Dimensions"])
            for m in rate["Metrics"] if "MetricStat" in m}
    assert dims == {"t5xx": ["LoadBalancer", "TargetGroup"], "req": ["LoadBalancer", "TargetGroup"],
                    "e5xx": ["LoadBalancer"]}
    # /metrics is answered by the ALB with a 404, never forwarded to the tasks from the internet
    elbv2 = c("elbv2")
    lb_arn = elbv2.describe_load_balancers(Names=["demo"])["LoadBalancers"][0]["LoadBalancerArn"]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    rules = [r for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
    assert len(rules) == 1 and rules[0]["Actions"][0]["Type"] == "fixed-response"
    assert rules[0]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    assert "/metrics" in json.dumps(rules[0]["Conditions"])
    body = json.loads(c("cloudwatch").get_dashboard(DashboardName="mldeploy-demo")["DashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert any("latency" in t for t in titles) and any("EMF" in t for t in titles)
    url = c("ssm").get_parameter(Name="/mldeploy/demo/default/url")["Parameter"]["Value"]
    assert url == out["url"]

    # a second up with nothing changed makes no mutating call
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr
    assert r.mutating == [], r.mutating
    noop_calls = len(r.calls)
    assert "nothing to change" in r.stderr

    # an alarm put by an earlier release with LB-only dimensions is brought up to date (drift), nothing else
    cw = c("cloudwatch")
    old = {k: copy.deepcopy(rate[k]) for k in ("AlarmName", "AlarmDescription", "ComparisonOperator", "Threshold",
                                               "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData",
                                               "Metrics")}
    for m in old["Metrics"]:
        if "MetricStat" in m:
            m["MetricStat"]["Metric"]["Dimensions"] = [d for d in m["MetricStat"]["Metric"]["Dimensions"]
                                                       if d["Name"] == "LoadBalancer"]
    cw.put_metric_alarm(**old)
    r = project.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == 0, r.stderr
    assert r.resource_mutating == ["PutMetricAlarm"], r.resource_mutating
    (fixed,) = cw.describe_alarms(AlarmNames=[rate["AlarmName"]])["MetricAlarms"]
    assert fixed["Metrics"] == rate["Metrics"]

    # a config change: a minimal update and a new task-definition revision
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["aws"].update(memory=2048, environment={"FEATURE_X": "on"})
    project.write(cfg)
    r = project.run("plan", "--json")
    changed = [(s["kind"], s["action"]) for s in r.json["steps"] if s["action"] != "no-op"]
    assert changed == [("task definition", "update"), ("ecs service", "update"), ("outputs (ssm)", "update")]
    r = project.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == 0, r.stderr
    assert sorted(r.resource_mutating) == ["PutParameter", "RegisterTaskDefinition", "UpdateService"]
    lock = "/mldeploy/demo/default/lock"
    lock_ops = [(c["op"], c["params"]["Name"]) for c in r.calls if r.is_bookkeeping(c) and c["params"]["Name"] == lock]
    assert lock_ops == [("PutParameter", lock), ("DeleteParameter", lock)]  # applied under the deployment lock
    svc = ecs.describe_services(cluster="demo", services=["demo"])["services"][0]
    assert svc["taskDefinition"].endswith("task-definition/demo:2")
    td2 = ecs.describe_task_definition(taskDefinition="demo")["taskDefinition"]
    assert td2["memory"] == "2048"
    assert {"name": "FEATURE_X", "value": "on"} in td2["containerDefinitions"][0]["environment"]

    # status
    r = project.run("status", "--json")
    assert r.rc == 0, r.stderr
    st = r.json
    assert st["deployed"] and st["url"] == out["url"] and st["image"] == IMAGE
    assert st["service"]["desired"] == 2 and st["service"]["task_definition"].endswith(":2")
    assert set(st["alarms"]) == {a["AlarmName"] for a in alarms}
    assert st["tasks"] == []  # moto runs no tasks
    assert project.run("status").rc == 0

    # down asks without --yes (no terminal here → refuses), then deletes everything tagged with --purge
    r = project.run("down")
    assert r.rc == 2 and "--yes" in r.stderr
    r = project.run("down", "--yes", "--purge", "--json")
    assert r.rc == 0, r.stderr
    down = r.json
    assert down["remaining"] == []
    # one delete step per resource (the SSM outputs, history and lock under the prefix are one step)
    for what in ("outputs (ssm)", "dashboard", "alarm", "scalable target", "ecs service", "task definition",
                 "listener", "target group", "load balancer", "security group", "ecs cluster", "log group",
                 "iam role", "ecr repository"):
        assert any(d.startswith(what + " ") for d in down["deleted"]), (what, down["deleted"])
    assert tagged_arns(c) == []
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert c("iam").list_roles()["Roles"] == [] or all(not x["RoleName"].startswith("demo-")
                                                       for x in c("iam").list_roles()["Roles"])
    assert c("ssm").get_parameters_by_path(Path="/mldeploy/demo")["Parameters"] == []
    r2 = project.run("plan", "--json")
    assert all(s["action"] == "create" for s in r2.json["steps"])
    print(f"\nAPI calls: first up {first_calls} ({first_mutating} mutating), no-op up {noop_calls} (0 mutating), "
          f"down {len(r.calls)} ({len(r.mutating)} mutating)")


def test_down_keeps_ecr_without_purge(project, moto_server):
    assert project.run("up", "--image", IMAGE, "--no-wait").rc == 0
    r = project.run("down", "--yes")
    assert r.rc == 0, r.stderr
    assert tagged_arns(moto_server.client) == []  # (moto's tagging API does not list ECR repositories)
    assert [x["repositoryName"] for x in moto_server.client("ecr").describe_repositories()["repositories"]] == ["demo"]
    assert "--purge" in r.stderr
    again = project.run("down", "--yes")
    assert again.rc == 0 and "nothing to delete" in again.stderr


def test_spot_https_requests_scaling_and_email(tmp_path, aws, moto_server):
    acm = moto_server.client("acm")
    cert = acm.request_certificate(DomainName="api.example.com")["CertificateArn"]
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["image"] = {"platform": "linux/arm64"}
    secret = "arn:aws:ssm:us-east-1:123456789012:parameter/demo/api-keys"
    cfg["aws"].update(secrets={"MLDEPLOY_API_KEYS": secret}, internal=True, container_insights=True,
                      log_retention_days=7)
    cfg["aws"].update(spot={"enabled": True, "weight": 80, "base": 1}, certificate_arn=cert, domain="api.example.com",
                      allowed_cidrs=["10.0.0.0/8"], autoscaling={"min": 2, "max": 6, "requests_per_target": 500},
                      alarms={"email": "ops@example.com"}, task_role_policy_arns=[
                          "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"])
    cfg["runtime"] = {"request_timeout_s": 300}  # slow predictions: the ALB idle timeout and keep-alive follow
    project = Project(tmp_path, aws, cfg)
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr
    assert r.json["url"] == "https://api.example.com"
    elbv2 = moto_server.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=["demo"])["LoadBalancers"][0]
    lb_attrs = {a["Key"]: a["Value"] for a in
                elbv2.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
    assert lb_attrs["idle_timeout.timeout_seconds"] == "305"
    env = {e["name"]: e["value"] for e in moto_server.client("ecs").describe_task_definition(
        taskDefinition="demo")["taskDefinition"]["containerDefinitions"][0]["environment"]}
    assert env["MLDEPLOY_KEEP_ALIVE_S"] == "310"  # above the ALB's 305 s, so the ALB closes idle connections
    (create,) = r.params("CreateService")  # moto does not echo the strategy back; check what we sent
    assert create["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "weight": 20, "base": 1},
        {"capacityProvider": "FARGATE_SPOT", "weight": 80, "base": 0}]
    elbv2 = moto_server.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=["demo"])["LoadBalancers"][0]
    listeners = {li["Port"]: li for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    assert listeners[80]["DefaultActions"][0]["Type"] == "redirect"
    assert listeners[80]["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"
    assert listeners[443]["Protocol"] == "HTTPS" and listeners[443]["Certificates"][0]["CertificateArn"] == cert
    sg = moto_server.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["demo-alb"]}])["SecurityGroups"][0]
    assert sorted((p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in sg["IpPermissions"]) == \
        [(80, "10.0.0.0/8"), (443, "10.0.0.0/8")]
    assert lb["Scheme"] == "internal"
    td = moto_server.client("ecs").describe_task_definition(taskDefinition="demo")["taskDefinition"]
    assert td["runtimePlatform"]["cpuArchitecture"] == "ARM64" and td["taskRoleArn"].endswith(":role/demo-task")
    assert td["containerDefinitions"][0]["secrets"] == [{"name": "MLDEPLOY_API_KEYS", "valueFrom": secret}]
    exec_policy = moto_server.client("iam").get_role_policy(RoleName="demo-exec", PolicyName="mldeploy-execution")
    doc = exec_policy["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert {"Sid": "SsmSecrets", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": [secret]} \
        in doc["Statement"]
    cluster = moto_server.client("ecs").describe_clusters(clusters=["demo"], include=["SETTINGS"])["clusters"][0]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    group = moto_server.client("logs").describe_log_groups(logGroupNamePrefix="/mldeploy/demo")["logGroups"][0]
    assert group["retentionInDays"] == 7
    attached = moto_server.client("iam").list_attached_role_policies(RoleName="demo-task")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonS3ReadOnlyAccess"]
    aas = moto_server.client("application-autoscaling")
    pols = {p["PolicyName"]: p for p in aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]}
    req = pols["demo-requests"]["TargetTrackingScalingPolicyConfiguration"]
    assert req["TargetValue"] == 500.0
    assert req["PredefinedMetricSpecification"]["ResourceLabel"].startswith("app/demo/")
    sns = moto_server.client("sns")
    (topic,) = [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith("demo-alarms")]
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "ops@example.com")]
    alarm = moto_server.client("cloudwatch").describe_alarms(AlarmNames=["mldeploy-demo-5xx-rate"])["MetricAlarms"][0]
    assert alarm["AlarmActions"] == [topic]
    # idempotent with every optional resource present
    again = project.run("up", "--image", IMAGE, "--no-wait")
    assert again.rc == 0 and again.mutating == [], again.mutating
    # turning features off removes them
    cfg["aws"].pop("certificate_arn"), cfg["aws"].pop("domain"), cfg["aws"].pop("alarms")
    cfg["aws"]["autoscaling"]["requests_per_target"] = 0
    project.write(cfg)
    r = project.run("plan", "--json")
    deletes = {(s["kind"], s["name"]) for s in r.json["steps"] if s["action"] == "delete"}
    assert deletes == {("listener", "demo:443"), ("scaling policy", "demo-requests"),
                       ("sns topic", "mldeploy-demo-alarms")}
    updates = {(s["kind"], s["name"]): s["changes"] for s in r.json["steps"] if s["action"] == "update"}
    assert updates[("security group", "demo-alb")] == ["revoke 443 from 10.0.0.0/8"]
    assert project.run("up", "--image", IMAGE, "--no-wait").rc == 0
    sg = moto_server.client("ec2").describe_security_groups(GroupIds=[sg["GroupId"]])["SecurityGroups"][0]
    assert [p["FromPort"] for p in sg["IpPermissions"]] == [80]
    assert project.run("up", "--image", IMAGE, "--no-wait").mutating == []
    assert project.run("down", "--yes", "--purge").rc == 0
    assert tagged_arns(moto_server.client) == []


def test_logs_since_follow_and_status_when_not_deployed(project, moto_server):
    import signal
    import subprocess
    import sys
    import time

    r = project.run("status", "--json")
    assert r.rc == 0 and r.json["deployed"] is False
    r = project.run("logs")
    assert r.rc == 5 and "log group /mldeploy/demo/default does not exist" in r.stderr

    logs = moto_server.client("logs")
    logs.create_log_group(logGroupName="/mldeploy/demo/default")
    logs.create_log_stream(logGroupName="/mldeploy/demo/default", logStreamName="demo/model/abc123")
    now = int(time.time() * 1000)

    def put(message: str, ts: int) -> None:
        logs.put_log_events(logGroupName="/mldeploy/demo/default", logStreamName="demo/model/abc123",
                            logEvents=[{"timestamp": ts, "message": message}])

    put("old line [not markup]", now - 2 * 3600 * 1000)
    put('{"level": "info", "msg": "ready"}', now - 60 * 1000)
    r = project.run("logs", "--since", "10m")
    assert r.rc == 0, r.stderr
    assert '"msg": "ready"' in r.stdout and "old line" not in r.stdout
    r = project.run("logs", "--since", "3h", "--json")
    assert "old line [not markup]" in r.stdout
    assert project.run("logs", "--since", "ten minutes").rc == 2

    # --follow prints new events as they arrive and stops cleanly on Ctrl-C
    proc = subprocess.Popen([sys.executable, "-m", "mldeploy", "logs", "--follow", "--since", "5m"],
                            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=infra.interruptible)
    time.sleep(3)
    put("arrived while following", int(time.time() * 1000))
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.count('"msg": "ready"') == 1 and "arrived while following" in out
