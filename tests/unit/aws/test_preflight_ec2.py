"""``aws.compute: ec2``: plan's preflight checks the instance family's EC2 vCPU quota (Service Quotas, service code
``ec2``) against the Auto Scaling group's maximum, instead of Fargate's. moto implements Service Quotas for ``vpc``
only, so the answers are canned; the requests are asserted."""

from __future__ import annotations

from typing import Any

import pytest

from mldeploy.aws import preflight
from mldeploy.aws.resources import capacity
from mldeploy.errors import AwsError
from tests.unit.fakes import BASE_CONFIG, FakeRemote, project, spec


def _ec2(instance_type: str, extra: str = "") -> Any:
    return spec(project(BASE_CONFIG + f"aws:\n  compute: ec2\n  instance_type: {instance_type}\n{extra}"))


def _quotas(values: dict[str, float]) -> FakeRemote:
    def answer(ServiceCode: str, QuotaCode: str) -> dict[str, Any]:  # noqa: N803 (AWS's names)
        assert ServiceCode == "ec2", ServiceCode
        return {"Quota": {"QuotaCode": QuotaCode, "Value": values[QuotaCode]}}
    return FakeRemote({("service-quotas", "get_service_quota"): answer, **NO_GROUP})


NO_GROUP = {("autoscaling", "describe_auto_scaling_groups"): {"AutoScalingGroups": []}}
"""No Auto Scaling group yet: no instance refresh to report."""


def _quota_calls(remote: FakeRemote) -> list:
    return [c for c in remote.calls if c[0] == "service-quotas"]


@pytest.mark.parametrize(("instance_type", "on_demand", "spot"), [
    ("c7i.large", "L-1216C47A", "L-34B43A08"), ("m7g.xlarge", "L-1216C47A", "L-34B43A08"),
    ("r7i.large", "L-1216C47A", "L-34B43A08"), ("t3.micro", "L-1216C47A", "L-34B43A08"),
    ("i4i.large", "L-1216C47A", "L-34B43A08"), ("g5.xlarge", "L-DB2E81BA", "L-3819A6DF"),
    ("g4dn.xlarge", "L-DB2E81BA", "L-3819A6DF"), ("vt1.3xlarge", "L-DB2E81BA", "L-3819A6DF"),
    ("p5.48xlarge", "L-417A185B", "L-7212CCBC")])
def test_instance_families_map_to_their_quota_codes(instance_type: str, on_demand: str, spot: str) -> None:
    cls = preflight.ec2_quota_class(instance_type)
    assert cls is not None and (cls.on_demand, cls.spot) == (on_demand, spot)


@pytest.mark.parametrize("instance_type", ["inf2.xlarge", "trn1.2xlarge", "dl1.24xlarge", "x2idn.16xlarge",
                                           "hpc6a.48xlarge", "mac2.metal", "f1.2xlarge", "u-6tb1.metal"])
def test_families_with_quotas_of_their_own_are_not_mistaken_for_standard(instance_type: str) -> None:
    assert preflight.ec2_quota_class(instance_type) is None


def test_ec2_checks_the_on_demand_quota_of_the_family_not_fargate() -> None:
    s = _ec2("c7i.large", "  cpu: 1024\n  memory: 1024\n  autoscaling:\n    max: 10\n")
    top = capacity.max_instances(s)
    assert top == 10  # 2 × max 10 tasks, 2 per c7i.large (2 vCPU, 1024 units each)
    low = _quotas({"L-1216C47A": 16.0})
    (note,) = preflight.notes(s, low)
    assert _quota_calls(low) == [
        ("service-quotas", "get_service_quota", {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A"})]
    assert note.startswith("EC2 On-Demand Standard (A, C, D, H, I, M, R, T, Z) vCPU quota is 16 in us-east-1")
    assert "10 On-Demand instances may run 20 vCPU" in note and "request an increase" in note
    assert "Fargate" not in note
    (fine,) = preflight.notes(s, _quotas({"L-1216C47A": 1152.0}))
    assert "quota 1152 covers 10 On-Demand instances, 20 vCPU" in fine


def test_ec2_gpu_spot_checks_both_g_and_vt_quotas_with_the_split() -> None:
    s = _ec2("g5.xlarge", "  cpu: 2048\n  memory: 8192\n  gpus: 1\n  autoscaling:\n    max: 4\n"
                          "  spot:\n    enabled: true\n    weight: 75\n    base: 1\n")
    assert capacity.max_instances(s) == 8  # one GPU task per g5.xlarge
    assert preflight.ec2_split(s, 8) == (3, 6)  # base 1, then 25 % of 7 rounded up on-demand; 75 % of 7 up on Spot
    remote = _quotas({"L-DB2E81BA": 8.0, "L-3819A6DF": 64.0})
    on_demand, on_spot = preflight.notes(s, remote)
    assert [c[2]["QuotaCode"] for c in _quota_calls(remote)] == ["L-DB2E81BA", "L-3819A6DF"]
    assert "EC2 On-Demand G and VT vCPU quota is 8" in on_demand and "3 On-Demand instances may run 12 vCPU" \
        in on_demand
    assert "EC2 Spot G and VT vCPU quota 64 covers 6 Spot instances, 24 vCPU" in on_spot


def test_an_unreadable_ec2_quota_says_how_to_check_it() -> None:
    def unavailable(**_: Any) -> None:
        raise AwsError("service-quotas:GetServiceQuota failed (AccessDenied): not allowed")

    (note,) = preflight.notes(_ec2("c7i.large"), FakeRemote({("service-quotas", "get_service_quota"): unavailable,
                                                                      **NO_GROUP}))
    assert "not readable here" in note and "--service-code ec2 --quota-code L-1216C47A" in note


def test_fargate_configs_keep_the_fargate_check() -> None:
    remote = FakeRemote({("service-quotas", "get_service_quota"): {"Quota": {"Value": 4000.0}}})
    (note,) = preflight.notes(spec(), remote)
    assert note.startswith("Fargate On-Demand vCPU quota") and remote.calls[0][2]["ServiceCode"] == "fargate"
