"""Strict AWS rules for the tests: reject on top of moto what AWS documents as invalid (``MLDEPLOY_STRICT_AWS=1``).

``before_call`` is a botocore ``before-call.*.*`` handler (``mldeploy.aws.clients.test_hooks`` registers it). It
decodes the serialized request back into the caller's parameters, runs the rules for that operation and raises a
``ClientError`` with the code AWS returns, so the CLI behaves as it would against a real account.

``after_call`` (``after-call.*.*``) lets a rule's module adjust what the caller reads back: ``s3_policy`` keeps
conditioned bucket-policy statements out of moto's reach (moto ignores Conditions) and evaluates their
``aws:SecureTransport`` itself (``MLDEPLOY_STRICT_AWS_TLS=1``: the plain-http test endpoint stands in for TLS).

Layout: ``core`` (``Call``, ``rule`` / ``RULES``, ``forward`` / ``answer``, ``Rejected`` / ``reject``, shared
helpers), ``decode`` (request decoding), ``limits`` (the service model's maxima, on every request), ``dispatch`` (the
botocore handlers), and one module per service holding its rules (importing this package registers them all).

Sources, cited per rule: ``botocore`` = the AWS API reference text in botocore 1.43's service model
(``botocore/data/<service>/<version>/service-2.json[.gz]``, shape.member); ``ECS guide`` / ``ALB guide`` = the
AWS developer guides; ``terraform`` = hashicorp/terraform-provider-aws. Messages paraphrase AWS's; codes are AWS's.
Rules that need AWS state (subnet AZs, target-group associations) read it through a plain boto3 client with no
hooks, against the same endpoint.
"""

from __future__ import annotations

from typing import Any

from mldeploy.testing.aws_rules import (  # noqa: F401  (importing a service module registers its rules)
    autoscaling,
    cloudwatch,
    ec2,
    ecr,
    ecs,
    elbv2,
    iam,
    logs,
    s3,
    s3_policy,
    sns,
    ssm,
)
from mldeploy.testing.aws_rules.core import RULES, Call, Params, Rejected, Rule, reject, rule
from mldeploy.testing.aws_rules.decode import request_params
from mldeploy.testing.aws_rules.dispatch import after_call, before_call
from mldeploy.testing.aws_rules.limits import VALIDATION_CODE

HOOKS: list[tuple[str, Any]] = [("before-call.*.*", before_call), ("after-call.*.*", after_call)]
"""Every (event, handler) this layer needs; register all of them on each client."""

__all__ = ["HOOKS", "RULES", "VALIDATION_CODE", "Call", "Params", "Rejected", "Rule", "after_call", "before_call",
           "reject", "request_params", "rule"]
