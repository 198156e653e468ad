"""boto3 session, clients and AWS error translation.

Credentials, region and endpoints come from boto3's standard chain (``--profile``/``AWS_PROFILE``, SSO, env,
``AWS_ENDPOINT_URL``). Retries use botocore's retry modes (``standard`` by default, ``AWS_RETRY_MODE=adaptive``
honoured) so throttling is retried with backoff. ``MLDEPLOY_API_LOG=path`` appends one JSON line per API call
(used by tests and the report to count calls).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError

if TYPE_CHECKING:
    import boto3

    from mldeploy.config import Project

READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "Filter", "Lookup", "Search", "Head")

# botocore service name → IAM action prefix (where they differ)
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "resourcegroupstaggingapi": "tag", "service-quotas": "servicequotas"}


def is_mutating(operation: str) -> bool:
    """True for API operations that change state (everything that is not a read)."""
    return not operation.startswith(READ_PREFIXES)


@dataclass
class ApiCounter:
    """Counts API calls (all / mutating) made through this process's clients."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, service: str, op: str) -> None:
        with self.lock:
            self.calls.append((service, op))

    @property
    def total(self) -> int:
        return len(self.calls)

    @property
    def mutating(self) -> int:
        return sum(1 for _, op in self.calls if is_mutating(op))


_LAST = threading.local()  # (service, operation) of this thread's latest call, to name the IAM action on errors


def _api_hook(model: Any, params: Any, context: Any, counter: ApiCounter | None = None, **_: Any) -> None:
    service = model.service_model.service_name
    if counter is not None:
        counter.add(service, model.name)
    _LAST.value = (service, model.name)
    path = os.environ.get("MLDEPLOY_API_LOG")
    if not path:
        return
    record: dict[str, Any] = {"t": round(time.time(), 3), "service": service, "op": model.name,
                              "mutating": is_mutating(model.name)}
    if os.environ.get("MLDEPLOY_API_LOG_PARAMS") == "1":  # test/debug only: may contain config values
        record["params"] = getattr(_LAST, "params", None)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def _params_hook(params: Any, model: Any, **_: Any) -> None:
    """Keep the caller's parameters (before serialization) for the API log."""
    _LAST.params = dict(params)


class Clients:
    """Lazily created, cached boto3 clients sharing one session and retry config; ``counter`` counts their calls."""

    def __init__(self, session: boto3.Session, region: str, hooks: Sequence[tuple[str, Any]] = ()) -> None:
        from botocore.config import Config

        self.session = session
        self.region = region
        mode = os.environ.get("AWS_RETRY_MODE") or "standard"
        attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or 8)
        self._config = Config(retries={"mode": mode, "max_attempts": attempts}, connect_timeout=10, read_timeout=60,
                              user_agent_extra="mldeploy")
        self._cache: dict[str, Any] = {}
        self._account: str | None = None
        self.counter = ApiCounter()
        self.hooks = tuple(hooks)
        """Extra botocore handlers (event, handler) on every client: the CLI's test seams (``mldeploy.testing``)."""

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        return self.get(service)

    def get(self, service: str) -> Any:
        if service not in self._cache:
            client = self.session.client(service, region_name=self.region, config=self._config)
            client.meta.events.register("before-call.*.*", functools.partial(_api_hook, counter=self.counter))
            for event, handler in self.hooks:
                client.meta.events.register(event, handler)
            if os.environ.get("MLDEPLOY_API_LOG_PARAMS") == "1":
                client.meta.events.register("before-parameter-build.*.*", _params_hook)
            self._cache[service] = client
        return self._cache[service]

    @property
    def account(self) -> str:
        if self._account is None:
            with aws_errors("sts:GetCallerIdentity"):
                self._account = self.get("sts").get_caller_identity()["Account"]
        return self._account

    @property
    def partition(self) -> str:
        return self.session.get_partition_for_region(self.region)


def make_session(region: str | None, profile: str | None) -> tuple[boto3.Session, str]:
    """A boto3 session from the standard chain; raises AwsError when the profile or region is missing."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as e:
        raise AwsError(f"AWS profile {profile!r} not found", hint="check --profile / aws.profile / AWS_PROFILE "
                       "and ~/.aws/config (`aws configure list-profiles`)") from e
    if not session.region_name:
        raise AwsError("no AWS region configured",
                       hint="set aws.region in mldeploy.yaml, pass --region, or export AWS_REGION")
    return session, session.region_name


def clients(project: Project | None = None, *, region: str | None = None, profile: str | None = None,
            hooks: Sequence[tuple[str, Any]] = ()) -> Clients:
    """Clients for ``region``/``profile`` (the CLI's ``--region``/``--profile``), else the project's aws section,
    else boto3's standard chain."""
    region = region or (project.config.aws.region if project else None)
    profile = profile or (project.config.aws.profile if project else None)
    session, region = make_session(region, profile)
    return Clients(session, region, hooks)


def _action(service: str, op: str) -> str:
    return f"{IAM_PREFIX.get(service, service)}:{op}"


def translate(exc: BaseException, action: str | None = None) -> AwsError:
    """Turn a botocore exception into an actionable AwsError."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        TokenRetrievalError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsError("no AWS credentials found",
                        hint="run `aws configure` / `aws sso login`, pass --profile, or set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY (in GitHub Actions: aws-actions/configure-aws-credentials)")
    if isinstance(exc, TokenRetrievalError):
        return AwsError(f"AWS SSO session expired: {exc}", hint="run `aws sso login` and retry")
    if isinstance(exc, NoRegionError):
        return AwsError("no AWS region configured", hint="set aws.region, pass --region, or export AWS_REGION")
    if isinstance(exc, EndpointConnectionError):
        return AwsError(f"cannot reach AWS: {exc}", hint="check the network, the region and AWS_ENDPOINT_URL")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        msg = str(err.get("Message", "")) or str(exc)
        op = getattr(exc, "operation_name", None) or "?"
        what = action or op
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
                    "UnauthorizedException") or "not authorized" in msg:
            return AwsError(f"access denied: the caller may not perform {what}: {msg}",
                            hint=f"grant {what} to your IAM identity; `mldeploy iam-policy` prints every action "
                                 "mldeploy needs")
        if code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                    "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId"):
            return AwsError(f"AWS rejected the credentials ({code}): {msg}",
                            hint="refresh your credentials (aws sso login / new access key) and retry")
        if code in ("Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"):
            return AwsError(f"AWS kept throttling {what} after retries: {msg}",
                            hint="retry later, or raise AWS_MAX_ATTEMPTS / use AWS_RETRY_MODE=adaptive")
        return AwsError(f"{what} failed ({code or exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')}): "
                        f"{msg.strip()[:500]}")
    return AwsError(f"{action or 'AWS call'} failed: {exc}")


@contextlib.contextmanager
def aws_errors(action: str | None = None) -> Iterator[None]:
    """Translate botocore errors raised inside the block into AwsError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as e:
        if action is None and isinstance(e, ClientError):
            op = getattr(e, "operation_name", None)
            last = getattr(_LAST, "value", None)
            action = _action(last[0], op) if last and last[1] == op else op
        raise translate(e, action) from e


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' otherwise)."""
    resp = getattr(exc, "response", None) or {}
    return str(resp.get("Error", {}).get("Code", ""))


def call(fn: Any, /, *, missing: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """``fn(**kwargs)`` with errors translated; returns None when the error code is in ``missing``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as e:
        if error_code(e) in missing:
            return None
        op = getattr(e, "operation_name", None)
        last = getattr(_LAST, "value", None)
        raise translate(e, _action(last[0], op) if last and last[1] == op else op) from e
    except BotoCoreError as e:
        raise translate(e) from e
