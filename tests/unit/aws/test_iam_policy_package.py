"""``mldeploy.aws.iam_policy`` is a package of small modules that still exports every name the single module did."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mldeploy.aws import iam_policy

# Every public name ``mldeploy/aws/iam_policy.py`` defined before it became a package, and the module holding it now.
MODULES = {
    "scope": ["ANY", "Condition", "Grant", "Scope", "alarm_names", "expand", "fill", "owned", "tagged_on_create"],
    "arns": ["CERTIFICATE", "CW", "EC2", "ECR", "ECS", "ECS_INSTANCE_POLICY", "ELB", "ELB_OURS", "INSTANCE_PROFILE",
             "INSTANCE_ROLE", "LAUNCH_TEMPLATE", "LOGS", "MODEL_BUCKET", "ROLES", "SCALABLE_TARGET", "SG", "SSM",
             "TASK_ROLE"],
    "grants": ["GRANTS", "MERGED_SIDS"],
    "roles": ["instance_role_grants", "role_grants"],
    "document": ["boundary_name", "boundary_policy", "policy_for", "scope_for"],
    "limits": ["MANAGED_POLICIES_PER_ROLE", "MANAGED_POLICY_LIMIT", "ROLE_POLICY_LIMIT", "STAR_OK_PREFIXES",
               "UNSCOPED", "managed_policies", "size", "unscoped_mutations"],
}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in MODULES.items() for n in names])
def test_every_previously_exported_name_is_the_modules_object(module: str, name: str):
    assert getattr(iam_policy, name) is getattr(importlib.import_module(f"mldeploy.aws.iam_policy.{module}"), name)


def test_all_lists_exactly_the_exported_names_and_every_module_is_listed():
    assert sorted(iam_policy.__all__) == sorted(n for names in MODULES.values() for n in names)
    files = sorted(p.stem for p in Path(iam_policy.__file__).parent.glob("*.py") if p.stem != "__init__")
    assert files == sorted(MODULES), "a new module: add its public names to MODULES and __init__"


def test_every_merge_group_of_the_table_has_its_sid():
    groups = {g.merge for grants in iam_policy.GRANTS.values() for g in grants if g.merge}
    assert groups == set(iam_policy.MERGED_SIDS)  # policy_for looks each group's Sid up in MERGED_SIDS
