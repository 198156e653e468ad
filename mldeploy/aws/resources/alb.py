"""Deprecated shim: the ALB family is now ``load_balancer``, ``target_group`` and ``listener`` (plans as data).

Kept only so modules not yet converted (``aws/planner.py``, ``aws/status.py``, ``workflows/down.py``,
``resources/stack_outputs.py``) still import; the names map to the new functions, whose signatures are
``(spec, remote, known)``. Delete this file once nothing imports it.
"""

from __future__ import annotations

from mldeploy.aws.resources.listener import (
    PRIVATE_PATHS,
    SSL_POLICY,
    forwarded_to,
    plan_private_paths,
    traffic_listener,
)
from mldeploy.aws.resources.listener import plan as plan_listeners
from mldeploy.aws.resources.load_balancer import delete as delete_load_balancer
from mldeploy.aws.resources.load_balancer import plan as plan_load_balancer
from mldeploy.aws.resources.load_balancer import read as describe_lb
from mldeploy.aws.resources.load_balancer import url
from mldeploy.aws.resources.target_group import delete as delete_target_group
from mldeploy.aws.resources.target_group import plan as plan_target_group
from mldeploy.aws.resources.target_group import read as describe_tg
from mldeploy.aws.resources.target_group import settings as target_group_settings

__all__ = ["PRIVATE_PATHS", "SSL_POLICY", "delete_load_balancer", "delete_target_group", "describe_lb", "describe_tg",
           "forwarded_to", "plan_listeners", "plan_load_balancer", "plan_private_paths", "plan_target_group",
           "target_group_settings", "traffic_listener", "url"]
