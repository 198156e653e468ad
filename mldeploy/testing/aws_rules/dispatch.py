"""The botocore handlers: ``before_call`` runs the rules registered for the operation (then the model limits),
raises a ``ClientError`` with AWS's code when one rejects the request, and applies the registered request
rewriters otherwise; ``after_call`` applies the registered response rewriters."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mldeploy.testing.aws_rules.core import ANSWERS, FORWARDS, RULES, Call, Rejected
from mldeploy.testing.aws_rules.decode import request_params
from mldeploy.testing.aws_rules.limits import model_limits


def before_call(model: Any, params: Any, context: Any = None, request_signer: Any = None, **_: Any) -> None:
    """botocore ``before-call`` handler: raise ``ClientError`` when a rule rejects the request."""
    service, op = model.service_model.service_name, model.name
    rules = [*RULES.get((service, op), ()), *RULES.get((service, "*"), ()), model_limits]
    decoded = request_params(model, params)
    endpoint = None
    if isinstance(params, dict) and params.get("url"):
        url = urlsplit(params["url"])
        endpoint = f"{url.scheme}://{url.netloc}"
    region = (context or {}).get("client_region") or getattr(request_signer, "region_name", None)
    call = Call(service, op, model, decoded, endpoint, region)
    for check in rules:
        try:
            check(call)
        except Rejected as e:
            raise client_error(e, op) from None
    if isinstance(params, dict):
        for rewrite in FORWARDS.get((service, op), ()):
            rewrite(call, params)
    if context is not None and ANSWERS.get((service, op)):
        context["mldeploy_strict_call"] = call  # for after_call


def after_call(model: Any, parsed: Any = None, context: Any = None, **_: Any) -> None:
    """botocore ``after-call`` handler: let the registered rewriters adjust a successful response."""
    service, op = model.service_model.service_name, model.name
    call = (context or {}).get("mldeploy_strict_call")
    if call is None or not isinstance(parsed, dict) or "Error" in parsed:
        return
    for rewrite in ANSWERS.get((service, op), ()):
        rewrite(call, parsed)


def client_error(e: Rejected, op: str) -> Exception:
    """The ``ClientError`` botocore raises for AWS's answer ``e``."""
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": e.code, "Message": e.message, "Type": "Sender"},
                        "ResponseMetadata": {"HTTPStatusCode": e.status}}, op)
