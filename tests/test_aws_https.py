"""HTTPS for ``aws.domain`` end to end: the real CLI against a moto server with ACM and Route 53.

This module runs its own moto server with ``MOTO_ACM_VALIDATION_WAIT=2``: moto keeps a requested certificate
PENDING_VALIDATION for that many seconds, then reports it ISSUED, so ``up`` really waits for issuance.

What moto cannot show: it never resolves the validation CNAME (it issues after the delay whatever the zone holds),
serves no TLS on the listener and does not refuse to delete a certificate in use (``ResourceInUseException``), nor
does it check the load balancer security group lets 443 in. The tests assert the requests and resources instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import infra
from tests.test_aws_helpers import BASE_CONFIG, Project, tagged_arns

pytestmark = [pytest.mark.aws]

IMAGE = "registry.example/demo:1"
DOMAIN = "api.example.com"


@pytest.fixture(scope="module")
def acm_moto() -> Iterator[infra.MotoServer]:
    with infra.MotoServer(env={"MOTO_ACM_VALIDATION_WAIT": "2"}) as server:
        yield server


@pytest.fixture
def env(acm_moto: infra.MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return infra.use_moto(acm_moto, monkeypatch)  # with the strict AWS-rules layer on, as the rest


def _config(**aws: object) -> dict:
    return {**BASE_CONFIG, "aws": {**BASE_CONFIG["aws"], **aws}}


def _records(r53, zone_id: str) -> dict[tuple[str, str], dict]:
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {(s["Name"], s["Type"]): s for s in sets if s["Type"] not in ("NS", "SOA")}


def test_domain_gets_a_validated_certificate_alias_and_https_listeners_and_down_removes_them(
        tmp_path: Path, env: dict[str, str], acm_moto: infra.MotoServer) -> None:
    c = acm_moto.client
    r53, acm, elbv2 = c("route53"), c("acm"), c("elbv2")
    zone_id = r53.create_hosted_zone(Name="example.com", CallerReference="t1")["HostedZone"]["Id"].rsplit("/")[-1]
    r53.create_hosted_zone(Name="other.org", CallerReference="t2")
    project = Project(tmp_path, env, _config(domain=DOMAIN))

    r = project.run("plan", "--json")
    assert r.rc == 0, r.stderr
    steps = {(s["kind"], s["name"]): s for s in r.json["steps"]}
    assert steps[("acm certificate", DOMAIN)]["action"] == "create"
    assert steps[("dns record", f"{DOMAIN}. A")]["action"] == "create"
    assert steps[("listener", "demo:443")]["changes"] == ["HTTPS → forward"]
    assert steps[("listener", "demo:80")]["changes"] == ["HTTP → HTTPS redirect"]
    assert not any("plain HTTP" in n for n in r.json["notes"]) and r.mutating == []

    r = project.run("up", "--image", IMAGE, "--no-wait", "--json", timeout=180)
    assert r.rc == 0, r.stderr
    (request,) = r.params("RequestCertificate")
    assert request["DomainName"] == DOMAIN and request["ValidationMethod"] == "DNS"
    assert len(request["IdempotencyToken"]) <= 32
    assert {"Key": "mldeploy:app", "Value": "demo"} in request["Tags"]
    # really waited: moto answered PENDING_VALIDATION until its 2 s passed
    describes = [p for p in r.params("DescribeCertificate")]
    assert len(describes) >= 3

    (summary,) = acm.list_certificates()["CertificateSummaryList"]
    cert = acm.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
    assert cert["Status"] == "ISSUED" and cert["DomainName"] == DOMAIN
    validation = cert["DomainValidationOptions"][0]["ResourceRecord"]
    records = _records(r53, zone_id)
    cname = records[(validation["Name"], "CNAME")]
    assert cname["ResourceRecords"] == [{"Value": validation["Value"]}]
    lb = elbv2.describe_load_balancers(Names=["demo"])["LoadBalancers"][0]
    alias = records[(f"{DOMAIN}.", "A")]["AliasTarget"]
    assert alias["DNSName"].rstrip(".").lower().endswith(lb["DNSName"].lower())
    assert alias["HostedZoneId"] == lb["CanonicalHostedZoneId"]

    listeners = {li["Port"]: li for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    assert set(listeners) == {80, 443}
    assert listeners[443]["Protocol"] == "HTTPS"
    assert listeners[443]["Certificates"][0]["CertificateArn"] == cert["CertificateArn"]
    redirect = listeners[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"

    # a second plan changes nothing (the certificate, both records and the listeners are recognised)
    r = project.run("plan", "--json")
    assert r.rc == 0, r.stderr
    assert r.json["changes"] == 0, [s["message"] for s in r.json["steps"] if s["action"] != "no-op"]

    # down: listeners, then the certificate and its validation record, then the alias, then the load balancer
    r = project.run("down", "--yes", "--purge", timeout=180)
    assert r.rc == 0, r.stderr
    ops = [c["op"] for c in r.calls if c["mutating"]]
    assert ops.index("DeleteListener") < ops.index("DeleteCertificate") < ops.index("DeleteLoadBalancer")
    assert acm.list_certificates()["CertificateSummaryList"] == []
    assert _records(r53, zone_id) == {}
    assert tagged_arns(c) == []


def test_without_a_domain_plan_and_up_say_the_endpoint_is_plain_http(tmp_path: Path, env: dict[str, str]) -> None:
    project = Project(tmp_path, env)
    r = project.run("plan", "--json")
    assert r.rc == 0, r.stderr
    assert any("the endpoint is plain HTTP" in n for n in r.json["notes"])
    assert not any(c["op"].startswith(("RequestCertificate", "ListHostedZones")) for c in r.calls)
    r = project.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == 0, r.stderr
    assert "the endpoint is plain HTTP" in r.stderr.replace("\n", " ")


def test_domain_without_a_hosted_zone_fails_at_plan_naming_the_fixes(tmp_path: Path, env: dict[str, str]) -> None:
    project = Project(tmp_path, env, _config(domain="api.nowhere.net"))
    r = project.run("plan")
    assert r.rc != 0
    text = r.stderr.replace("\n", " ")
    assert "no public Route 53 hosted zone holds aws.domain 'api.nowhere.net'" in text and r.mutating == []
