"""The ACM certificate for ``aws.domain`` (when no ``aws.certificate_arn`` is given), validated through Route 53.

``up`` requests it (DNS validation, an idempotency token per app/env/domain, our tags), writes the validation CNAME
into the domain's hosted zone (``dns.zone``) with an UPSERT, and waits until ACM issues it; the HTTPS listener then
uses it (``known["certificate_arn"]``: the ARN, or a ``Ref`` to ``request_certificate``'s output).

``down`` deletes the certificate and its validation record (decided: public ACM certificates are free and re-issue
in minutes, and ``down`` leaves nothing tagged behind). It runs after the listeners are deleted — "You cannot delete
an ACM certificate that is being used by another AWS service" (ACM API reference, DeleteCertificate) — retrying
``ResourceInUseException`` while the load balancer lets go of it. The validation record stays when a certificate
that is not ours, for the same domain, still relies on it for renewal.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, RetryOn, Step, Wait, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.aws.resources import dns

KIND = "acm certificate"
KEY = "certificate_arn"
USABLE = ("ISSUED", "PENDING_VALIDATION")
ISSUE_TIMEOUT_S = 1800.0
"""ACM DNS validation usually completes minutes after the CNAME resolves; AWS allows up to 72 hours before the
request times out (ACM User Guide, "Troubleshoot DNS validation problems"). A re-run after our 30 min continues."""
RECORD_TIMEOUT_S = 120.0
"""The validation record appears in DescribeCertificate a few seconds after RequestCertificate (eventually)."""
IN_USE_TIMEOUT_S = 600.0
VALIDATION_TTL = 300


def https(spec: StackSpec) -> bool:
    """The endpoint serves HTTPS: a certificate is given, or ``aws.domain`` gets one from ACM."""
    return spec.https


def managed(spec: StackSpec) -> bool:
    """mldeploy requests (and deletes) the certificate: ``aws.domain`` without ``aws.certificate_arn``."""
    aws = spec.config.aws
    return bool(aws.domain and not aws.certificate_arn)


def endpoint_note(spec: StackSpec) -> str | None:
    """Said by ``plan`` (and the ``up`` success line) when the endpoint is plain HTTP."""
    if https(spec):
        return None
    return ("the endpoint is plain HTTP: requests, API keys and tokens travel unencrypted; set aws.domain (with a "
            "Route 53 hosted zone) for HTTPS with an ACM certificate")


def token(spec: StackSpec) -> str:
    """ACM IdempotencyToken (``\\w+``, at most 32 characters): repeated requests within an hour return one
    certificate (ACM API reference, RequestCertificate)."""
    key = f"{spec.names.app}/{spec.names.env}/{(spec.config.aws.domain or '').lower()}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------------------------- reading


def _for_domain(spec: StackSpec, remote: Remote) -> list[dict[str, Any]]:
    domain = (spec.config.aws.domain or "").lower().rstrip(".")
    return [c for c in remote.pages("acm", "list_certificates", "CertificateSummaryList")
            if str(c.get("DomainName", "")).lower().rstrip(".") == domain]


def describe(remote: Remote, arn: str) -> dict[str, Any]:
    return remote.get("acm", "describe_certificate", CertificateArn=arn)["Certificate"]


def _tags(remote: Remote, arn: str) -> dict[str, str]:
    return tag_dict(remote.get("acm", "list_tags_for_certificate", CertificateArn=arn).get("Tags"))


def read_all(spec: StackSpec, remote: Remote) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ours, others): the described certificates for ``aws.domain``, split by our tags."""
    ours, others = [], []
    for summary in _for_domain(spec, remote):
        cert = describe(remote, summary["CertificateArn"])
        (ours if spec.owns(_tags(remote, summary["CertificateArn"])) else others).append(cert)
    return ours, others


def read(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    """Our usable certificate for the domain (an issued one first)."""
    ours, _ = read_all(spec, remote)
    usable = [c for c in ours if c.get("Status") in USABLE]
    return min(usable, key=lambda c: USABLE.index(c["Status"])) if usable else None


def validation_record(cert: dict[str, Any]) -> dict[str, str] | None:
    """The CNAME ACM asks for (None until ACM has published it)."""
    for option in cert.get("DomainValidationOptions") or []:
        if option.get("ResourceRecord"):
            return dict(option["ResourceRecord"])
    return None


def _cname(name: Any, value: Any) -> dict[str, Any]:
    return {"Name": name, "Type": "CNAME", "TTL": VALIDATION_TTL, "ResourceRecords": [{"Value": value}]}


def _has_record(remote: Remote, zone_id: str, record: dict[str, str]) -> bool:
    return any(dns.fqdn(v["Value"]) == dns.fqdn(record["Value"])
               for r in dns.records(remote, zone_id, record["Name"], "CNAME") for v in r.get("ResourceRecords", []))


# ------------------------------------------------------------------------------------------------ planning


def _comment(spec: StackSpec) -> str:
    return f"mldeploy {spec.names.app}/{spec.names.env}: ACM DNS validation"


def _wait_issued(arn: Any) -> Wait:
    return Wait("certificate_issued", {"certificate_arn": arn}, timeout_s=ISSUE_TIMEOUT_S)


def _validate(spec: StackSpec, zone_id: str, arn: Any) -> list[ApiCall | Wait]:
    """Until ACM publishes the CNAME, read it, UPSERT it, wait until issued (for a certificate just requested)."""
    name, value = Ref("certificate_validation_name"), Ref("certificate_validation_value")
    return [
        Wait("certificate_validation_record", {"certificate_arn": arn}, timeout_s=RECORD_TIMEOUT_S),
        ApiCall("acm", "describe_certificate", {"CertificateArn": arn}, outputs=(
            (name.name, "Certificate.DomainValidationOptions[0].ResourceRecord.Name"),
            (value.name, "Certificate.DomainValidationOptions[0].ResourceRecord.Value"))),
        dns.change(zone_id, "UPSERT", _cname(name, value), _comment(spec)),
        _wait_issued(arn)]


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Request / validate / wait for the domain's certificate; sets ``known["certificate_arn"]`` (managed only)."""
    if not managed(spec) or spec.canary:
        return []
    domain = str(spec.config.aws.domain)
    zone_id = dns.zone(spec, remote, known)
    if zone_id is None:
        raise dns.no_zone_error(spec)
    cert = read(spec, remote)
    if cert is None:
        known[KEY] = Ref(KEY)
        request = ApiCall("acm", "request_certificate", {
            "DomainName": domain, "ValidationMethod": "DNS", "IdempotencyToken": token(spec),
            "Tags": spec.tag_list()}, outputs=((KEY, "CertificateArn"),))
        changes = [f"DNS validation in {known[dns.ZONE_NAME_KEY]}", "wait until issued"]
        return [Step(KIND, domain, Action.create, changes, calls=[request, *_validate(spec, zone_id, Ref(KEY))])]
    arn = cert["CertificateArn"]
    known[KEY] = arn
    record = validation_record(cert)
    if record is None:  # a run stopped right after the request: ACM has not published the record yet
        return [Step(KIND, domain, Action.update, ["DNS validation", "wait until issued"],
                     calls=_validate(spec, zone_id, arn))]
    calls: list[ApiCall | Wait] = []
    changes: list[str] = []
    if not _has_record(remote, zone_id, record):
        # kept after issuance too: ACM renews a DNS-validated certificate only while the CNAME stays in place
        # (ACM User Guide, "Managed certificate renewal")
        changes.append(f"validation record {record['Name']}")
        calls.append(dns.change(zone_id, "UPSERT", _cname(record["Name"], record["Value"]), _comment(spec)))
    if cert["Status"] != "ISSUED":
        changes.append("wait until issued")
        calls.append(_wait_issued(arn))
    if not calls:
        return [noop(KIND, domain)]
    return [Step(KIND, domain, Action.update, changes, note=cert["Status"].lower().replace("_", " "), calls=calls)]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Our certificates for the domain and their validation record (after the listeners that used them)."""
    if not managed(spec) or spec.canary:
        return []
    ours, others = read_all(spec, remote)
    if not ours:
        return []
    zone_id = dns.zone(spec, remote, known)
    needed = {dns.fqdn(r["Name"]) for r in filter(None, map(validation_record, others))}
    steps: list[Step] = []
    done: set[str] = set()
    for cert in ours:
        calls: list[ApiCall] = []
        record = validation_record(cert)
        if zone_id and record and dns.fqdn(record["Name"]) not in needed | done:
            done.add(dns.fqdn(record["Name"]))
            calls += [dns.change(zone_id, "DELETE", r, f"mldeploy {spec.names.app}/{spec.names.env}: down",
                                 missing=("InvalidChangeBatch",))
                      for r in dns.records(remote, zone_id, record["Name"], "CNAME")]
        calls.append(ApiCall("acm", "delete_certificate", {"CertificateArn": cert["CertificateArn"]},
                             missing=("ResourceNotFoundException",),
                             retry=(RetryOn("ResourceInUseException"),), retry_timeout_s=IN_USE_TIMEOUT_S))
        steps.append(Step(KIND, str(spec.config.aws.domain), Action.delete, note=cert["CertificateArn"], calls=calls))
    return steps
