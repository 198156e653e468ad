"""HTTPS for ``aws.domain`` as data: the hosted zone, the ACM certificate and its validation record, the alias
record, the listeners on the requested certificate, the plain-HTTP note, and the canary's size on ``up``."""

from __future__ import annotations

from typing import Any

import pytest

from mldeploy.aws.engine import stack
from mldeploy.aws.engine.model import Action, ApiCall, Ref, RetryOn, Step, Wait, noop
from mldeploy.aws.resources import certificate, dns, listener
from mldeploy.errors import AwsError
from tests.unit.fakes import FakeRemote, owned_tags, project, spec

ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/demo/abc"
ALB_DNS = "demo-123.us-east-1.elb.amazonaws.com"
ALB_ZONE = "Z35SXDOTRQ7X7K"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/demo-tg/111"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"
ZONE = "Z0000000000EXAMPLE"
RECORD = {"Name": "_x1.api.example.com.", "Type": "CNAME", "Value": "_y2.acm-validations.aws."}
DOMAIN_CONFIG = """\
name: demo
model:
  path: model.onnx
  version: 1.0.0
aws:
  domain: api.example.com
"""
COMMENT = "mldeploy demo/default: ACM DNS validation"


def _zones() -> dict[str, Any]:
    return {"HostedZones": [
        {"Id": "/hostedzone/ZCOM", "Name": "example.com.", "Config": {"PrivateZone": False}},
        {"Id": "/hostedzone/ZPRIVATE", "Name": "api.example.com.", "Config": {"PrivateZone": True}},
        {"Id": f"/hostedzone/{ZONE}", "Name": "api.example.com.", "Config": {"PrivateZone": False}},
        {"Id": "/hostedzone/ZOTHER", "Name": "other.org.", "Config": {"PrivateZone": False}}]}


def _cert(status: str = "ISSUED", record: dict | None = RECORD, arn: str = CERT) -> dict[str, Any]:
    option = {"DomainName": "api.example.com", "ValidationMethod": "DNS"}
    if record:
        option["ResourceRecord"] = record
    return {"Certificate": {"CertificateArn": arn, "DomainName": "api.example.com", "Status": status,
                            "DomainValidationOptions": [option]}}


def _remote(certs: dict[str, dict] | None = None, tags: dict[str, list] | None = None,
            rrsets: list[dict] | None = None) -> FakeRemote:
    certs = certs or {}
    return FakeRemote({
        ("route53", "list_hosted_zones"): _zones(),
        ("acm", "list_certificates"): {"CertificateSummaryList": [
            {"CertificateArn": arn, "DomainName": "api.example.com"} for arn in certs]},
        ("acm", "describe_certificate"): lambda CertificateArn: certs[CertificateArn],  # noqa: N803
        ("acm", "list_tags_for_certificate"):
            lambda CertificateArn: {"Tags": (tags or {}).get(CertificateArn, owned_tags())},  # noqa: N803
        ("route53", "list_resource_record_sets"): {"ResourceRecordSets": rrsets or []},
        ("elbv2", "describe_load_balancers"): {"LoadBalancers": [
            {"LoadBalancerArn": ALB_ARN, "DNSName": ALB_DNS, "CanonicalHostedZoneId": ALB_ZONE}]}})


def _validation(arn: Any) -> list[Any]:
    name, value = Ref("certificate_validation_name"), Ref("certificate_validation_value")
    return [
        Wait("certificate_validation_record", {"certificate_arn": arn}, timeout_s=certificate.RECORD_TIMEOUT_S),
        ApiCall("acm", "describe_certificate", {"CertificateArn": arn}, outputs=(
            ("certificate_validation_name", "Certificate.DomainValidationOptions[0].ResourceRecord.Name"),
            ("certificate_validation_value", "Certificate.DomainValidationOptions[0].ResourceRecord.Value"))),
        _change("UPSERT", {"Name": name, "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": value}]}),
        Wait("certificate_issued", {"certificate_arn": arn}, timeout_s=certificate.ISSUE_TIMEOUT_S)]


def _change(action: str, record: dict, comment: str = COMMENT, **kw: Any) -> ApiCall:
    return ApiCall("route53", "change_resource_record_sets", {"HostedZoneId": ZONE, "ChangeBatch": {
        "Comment": comment, "Changes": [{"Action": action, "ResourceRecordSet": record}]}}, **kw)


# ------------------------------------------------------------------------------------------------ hosted zone


def test_zone_is_the_longest_public_match_or_the_configured_one() -> None:
    known: dict[str, Any] = {}
    assert dns.zone(spec(project(DOMAIN_CONFIG)), _remote(), known) == ZONE
    assert known[dns.ZONE_NAME_KEY] == "api.example.com."
    parent = DOMAIN_CONFIG.replace("api.example.com", "www.shop.example.com")
    assert dns.zone(spec(project(parent)), _remote(), {}) == "ZCOM"
    given = project(DOMAIN_CONFIG + "  hosted_zone_id: ZCOM\n")
    remote = FakeRemote({("route53", "get_hosted_zone"): {"HostedZone": {"Id": "/hostedzone/ZCOM",
                                                                          "Name": "example.com."}}})
    assert dns.zone(spec(given), remote, {}) == "ZCOM"
    assert remote.calls == [("route53", "get_hosted_zone", {"Id": "ZCOM"})]  # no listing when the id is given


def test_no_zone_for_the_domain_is_a_plan_error_naming_the_fixes() -> None:
    none = project(DOMAIN_CONFIG.replace("api.example.com", "api.nowhere.net"))
    with pytest.raises(AwsError, match="no public Route 53 hosted zone holds aws.domain 'api.nowhere.net'") as e:
        certificate.plan(spec(none), _remote(), {})
    assert "aws.hosted_zone_id" in (e.value.hint or "")


# ------------------------------------------------------------------------------------------------ certificate


def test_certificate_requested_validated_and_waited_for_on_empty() -> None:
    known: dict[str, Any] = {}
    steps = certificate.plan(spec(project(DOMAIN_CONFIG)), _remote(), known)
    assert steps == [Step("acm certificate", "api.example.com", Action.create,
                          ["DNS validation in api.example.com.", "wait until issued"], calls=[
        ApiCall("acm", "request_certificate", {
            "DomainName": "api.example.com", "ValidationMethod": "DNS",
            "IdempotencyToken": certificate.token(spec(project(DOMAIN_CONFIG))),
            "Tags": owned_tags()},
            outputs=(("certificate_arn", "CertificateArn"),)),
        *_validation(Ref("certificate_arn"))])]
    assert known["certificate_arn"] == Ref("certificate_arn")
    token = certificate.token(spec(project(DOMAIN_CONFIG)))
    assert len(token) <= 32 and token.isalnum()
    other = project(DOMAIN_CONFIG.replace("api.example.com", "www.example.com"))
    assert token != certificate.token(spec(other))  # one per app/env/domain


def test_issued_certificate_with_its_record_is_a_noop_and_sets_known() -> None:
    rrset = {"Name": RECORD["Name"], "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": RECORD["Value"]}]}
    known: dict[str, Any] = {}
    assert certificate.plan(spec(project(DOMAIN_CONFIG)), _remote({CERT: _cert()}, rrsets=[rrset]), known) == [
        noop("acm certificate", "api.example.com")]
    assert known["certificate_arn"] == CERT


def test_pending_certificate_gets_its_record_and_a_wait_foreign_ones_are_ignored() -> None:
    foreign = CERT.replace("abc-123", "theirs")
    remote = _remote({foreign: _cert(arn=foreign), CERT: _cert("PENDING_VALIDATION")},
                     tags={foreign: owned_tags(env="prod")})
    assert certificate.plan(spec(project(DOMAIN_CONFIG)), remote, {}) == [
        Step("acm certificate", "api.example.com", Action.update,
             [f"validation record {RECORD['Name']}", "wait until issued"], note="pending validation", calls=[
            _change("UPSERT", {"Name": RECORD["Name"], "Type": "CNAME", "TTL": 300,
                               "ResourceRecords": [{"Value": RECORD["Value"]}]}),
            Wait("certificate_issued", {"certificate_arn": CERT}, timeout_s=certificate.ISSUE_TIMEOUT_S)])]
    # interrupted right after the request: ACM has not published the record yet
    assert certificate.plan(spec(project(DOMAIN_CONFIG)), _remote({CERT: _cert("PENDING_VALIDATION", None)}),
                            {}) == [Step("acm certificate", "api.example.com", Action.update,
                                         ["DNS validation", "wait until issued"], calls=_validation(CERT))]


def test_no_certificate_family_without_a_domain_or_with_a_given_certificate() -> None:
    remote = FakeRemote()  # no call at all: the IAM policy needs no acm/route53 action for plain HTTP
    assert certificate.plan(spec(), remote, {}) == certificate.delete(spec(), remote, {}) == []
    given = project(DOMAIN_CONFIG + f"  certificate_arn: {CERT}\n")
    assert certificate.plan(spec(given), remote, {}) == certificate.delete(spec(given), remote, {}) == []
    assert dns.plan(spec(), remote, {}) == dns.delete(spec(), remote, {}) == [] and remote.calls == []


def test_certificate_delete_removes_the_record_unless_a_foreign_certificate_relies_on_it() -> None:
    rrset = {"Name": RECORD["Name"], "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": RECORD["Value"]}]}
    delete_cert = ApiCall("acm", "delete_certificate", {"CertificateArn": CERT},
                          missing=("ResourceNotFoundException",), retry=(RetryOn("ResourceInUseException"),),
                          retry_timeout_s=certificate.IN_USE_TIMEOUT_S)
    assert certificate.delete(spec(project(DOMAIN_CONFIG)), _remote({CERT: _cert()}, rrsets=[rrset]), {}) == [
        Step("acm certificate", "api.example.com", Action.delete, note=CERT, calls=[
            _change("DELETE", rrset, "mldeploy demo/default: down", missing=("InvalidChangeBatch",)), delete_cert])]
    foreign = CERT.replace("abc-123", "theirs")
    remote = _remote({CERT: _cert(), foreign: _cert(arn=foreign)}, tags={foreign: []}, rrsets=[rrset])
    assert certificate.delete(spec(project(DOMAIN_CONFIG)), remote, {}) == [
        Step("acm certificate", "api.example.com", Action.delete, note=CERT, calls=[delete_cert])]


# ------------------------------------------------------------------------------------------------ alias record


def _alias(host: str = ALB_DNS, zone: str = ALB_ZONE) -> dict[str, Any]:
    return {"Name": "api.example.com.", "Type": "A",
            "AliasTarget": {"HostedZoneId": zone, "DNSName": host, "EvaluateTargetHealth": False}}


def test_alias_for_a_new_load_balancer_reads_its_zone_then_upserts() -> None:
    known = {"alb_arn": Ref("alb_arn"), "alb_dns": Ref("alb_dns")}
    steps = dns.plan(spec(project(DOMAIN_CONFIG)), _remote(), known)
    want = {"Name": "api.example.com.", "Type": "A", "AliasTarget": {
        "HostedZoneId": Ref("alb_zone_id"), "DNSName": Ref("alb_dns"), "EvaluateTargetHealth": False}}
    assert steps == [Step("dns record", "api.example.com. A", Action.create, ["alias → (known after apply: alb_dns)"],
                          calls=[
        ApiCall("elbv2", "describe_load_balancers", {"LoadBalancerArns": [Ref("alb_arn")]},
                outputs=(("alb_zone_id", "LoadBalancers[0].CanonicalHostedZoneId"),)),
        _change("UPSERT", want, "mldeploy demo/default: alias to the ALB")])]


def test_alias_in_sync_is_a_noop_a_stale_one_ours_is_updated_a_foreign_record_is_refused() -> None:
    known = {"alb_arn": ALB_ARN, "alb_dns": ALB_DNS}
    in_sync = _remote(rrsets=[_alias("dualstack." + ALB_DNS.upper() + ".")])
    assert dns.plan(spec(project(DOMAIN_CONFIG)), in_sync, dict(known)) == [noop("dns record", "api.example.com. A")]
    stale = _remote(rrsets=[_alias("demo-999.us-east-1.elb.amazonaws.com.")])
    assert dns.plan(spec(project(DOMAIN_CONFIG)), stale, dict(known)) == [
        Step("dns record", "api.example.com. A", Action.update,
             [f"alias demo-999.us-east-1.elb.amazonaws.com → {ALB_DNS}"], calls=[
            _change("UPSERT", _alias(), "mldeploy demo/default: alias to the ALB")])]
    foreign = _remote(rrsets=[{"Name": "api.example.com.", "Type": "A", "TTL": 60,
                               "ResourceRecords": [{"Value": "203.0.113.7"}]}])
    with pytest.raises(AwsError, match=r"already has a A record \(203.0.113.7\)"):
        dns.plan(spec(project(DOMAIN_CONFIG)), foreign, dict(known))


def test_alias_delete_sends_the_record_as_read_and_leaves_foreign_ones() -> None:
    current = _alias(ALB_DNS + ".")
    assert dns.delete(spec(project(DOMAIN_CONFIG)), _remote(rrsets=[current]), {}) == [
        Step("dns record", "api.example.com. A", Action.delete, calls=[
            _change("DELETE", current, "mldeploy demo/default: down", missing=("InvalidChangeBatch",))])]
    assert dns.delete(spec(project(DOMAIN_CONFIG)), _remote(rrsets=[_alias("shop-1.elb.amazonaws.com.")]), {}) == []


# -------------------------------------------------------------------------------------------------- listeners


def test_domain_without_certificate_arn_serves_https_on_the_requested_certificate() -> None:
    known = {"alb_arn": Ref("alb_arn"), "tg_arn": Ref("tg_arn"), "certificate_arn": Ref("certificate_arn")}
    steps = listener.plan(spec(project(DOMAIN_CONFIG)), FakeRemote(), known)
    assert [(s.name, s.changes) for s in steps] == [("demo:80", ("HTTP → HTTPS redirect",)),
                                                    ("demo:443", ("HTTPS → forward",))]
    assert steps[0].calls[0].params["DefaultActions"] == listener.REDIRECT
    assert steps[1].calls[0].params["Certificates"] == [{"CertificateArn": Ref("certificate_arn")}]
    with pytest.raises(AwsError, match="the certificate family was not planned"):
        listener.plan(spec(project(DOMAIN_CONFIG)), FakeRemote(), {"alb_arn": Ref("a"), "tg_arn": Ref("t")})


def test_families_order_certificate_before_listeners_dns_after_the_load_balancer() -> None:
    names = [f.name for f in stack.RESOURCES]
    assert names.index("load balancer") < names.index("dns") < names.index("listeners")
    assert names.index("certificate") < names.index("listeners")
    # down is the reverse: listeners go before the certificate (ACM refuses one in use), records before the ALB
    down = names[::-1]
    assert down.index("listeners") < down.index("certificate") and down.index("dns") < down.index("load balancer")


def test_plain_http_is_said_plainly() -> None:
    assert "plain HTTP" in (certificate.endpoint_note(spec()) or "")
    assert certificate.endpoint_note(spec(project(DOMAIN_CONFIG))) is None


# ------------------------------------------------------------------------------------------------ canary size


def _canary_remote(stable: int, canary: int, weights: tuple[int, int]) -> FakeRemote:
    def services(cluster: str, services: list[str], include: list[str]) -> dict:
        count = {"demo": stable, "demo-canary": canary}[services[0]]
        return {"services": [{"serviceName": services[0], "status": "ACTIVE", "desiredCount": count}]}

    tgc = TG_ARN.replace("demo-tg/111", "demo-tgc/222")
    forward = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": TG_ARN, "Weight": weights[0]}, {"TargetGroupArn": tgc, "Weight": weights[1]}]}}
    return FakeRemote({("ecs", "describe_services"): services, ("elbv2", "describe_listeners"): {
        "Listeners": [{"Port": 80, "ListenerArn": "l80", "DefaultActions": [forward]}]}})


def test_up_resizes_a_running_canary_from_the_stable_count() -> None:
    proj = project(DOMAIN_CONFIG.replace("  domain: api.example.com\n", "  autoscaling: {min: 1, max: 20}\n"))
    steps = stack.plan_canary_size(spec(proj), _canary_remote(10, 1, (75, 25)), {"alb_arn": ALB_ARN})
    assert steps == [Step("ecs service", "demo-canary", Action.update, ["desired count 1 → 3 (25% of 10 stable tasks)"],
                          calls=[ApiCall("ecs", "update_service", {"cluster": "demo", "service": "demo-canary",
                                                                   "desiredCount": 3})])]
    assert stack.plan_canary_size(spec(proj), _canary_remote(10, 3, (75, 25)), {"alb_arn": ALB_ARN}) == [
        noop("ecs service", "demo-canary")]
    assert stack.canary_count(2, 10) == 1 and stack.canary_count(8, 50) == 4 and stack.canary_count(0, 0) == 1
