"""A Copilot environment manifest (copilot/environments/<env>/manifest.yml) → that environment's mldeploy fields.

Fields from aws/copilot-cli site/content/docs/manifest/environment.en.md: network.vpc (an imported VPC's id and
subnets), http.public.certificates, observability.container_insights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mldeploy.migrate.copilot_model import NEEDS_INPUT, NOT_NEEDED, UNSUPPORTED, Mapper, Row, deep_merge, leaves


def map_environment(out: Mapper, env_manifest: Mapping[str, Any], env: str, service: Mapping[str, Any],
                     override: Mapping[str, Any]) -> None:
    """An environment manifest (copilot/environments/<env>/manifest.yml): the VPC, certificates, insights."""
    src = f"env {env}:"
    done: set[str] = {"name", "type"}
    merged = deep_merge(service, override)
    placement = ((merged.get("network") or {}).get("vpc") or {}).get("placement")
    vpc = (env_manifest.get("network") or {}).get("vpc") or {}
    subnets = vpc.get("subnets") or {}
    public = [str(s["id"]) for s in subnets.get("public") or [] if isinstance(s, Mapping) and "id" in s]
    private = [str(s["id"]) for s in subnets.get("private") or [] if isinstance(s, Mapping) and "id" in s]
    if vpc.get("id"):
        out.put("aws.vpc_id", str(vpc["id"]), f"{src} network.vpc.id")
        done.add("network.vpc.id")
        if placement == "private" and private:
            out.rows[:] = [r for r in out.rows if r.copilot != "network.vpc.placement"]
            out.put("aws.subnet_ids", private, f"{src} network.vpc.subnets.private", "placement: private")
            out.put("aws.assign_public_ip", False, "network.vpc.placement", "private")
            if public:
                out.put("aws.alb_subnet_ids", public, f"{src} network.vpc.subnets.public", "the load balancer's")
        else:
            if public:
                out.put("aws.subnet_ids", public, f"{src} network.vpc.subnets.public")
            if private:
                out.skip(f"{src} network.vpc.subnets.private", NOT_NEEDED, "the service's placement is public: "
                         "its tasks ran in the public subnets")
        done |= {"network.vpc.subnets"}
    elif vpc:
        out.skip(f"{src} network.vpc", NEEDS_INPUT, "Copilot created this VPC: mldeploy uses the default VPC unless "
                 "aws.vpc_id/aws.subnet_ids name one (the Copilot VPC's ids work until its environment is deleted)")
        done.add("network.vpc")
    certs = ((env_manifest.get("http") or {}).get("public") or {}).get("certificates") or []
    if certs:
        out.put("aws.certificate_arn", str(certs[0]), f"{src} http.public.certificates[0]")
        for i, cert in enumerate(certs[1:], 1):
            out.rows.append(Row(f"{src} http.public.certificates[{i}]", None, UNSUPPORTED,
                                f"{cert}: mldeploy's HTTPS listener takes one certificate (aws.certificate_arn)"))
        done.add("http.public.certificates")
    insights = (env_manifest.get("observability") or {}).get("container_insights")
    if insights is not None:
        out.put("aws.container_insights", bool(insights), f"{src} observability.container_insights")
        done.add("observability.container_insights")
    for path in leaves(env_manifest):
        if not any(path == d or path.startswith(d + ".") for d in done):
            out.skip(f"{src} {path}", UNSUPPORTED, "no mldeploy equivalent")
