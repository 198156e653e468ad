"""``mldeploy.config.schema`` is a package of section modules that still exports every name the single module did."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import mldeploy.config.schema as schema

# Every public name ``mldeploy/config/schema.py`` defined before it became a package, and the section module that
# holds it now. Callers import these from ``mldeploy.config.schema``; dropping a re-export breaks them.
SECTIONS = {
    "common": ["MAX_BASE_NAME", "MIN_NAME", "NAME_RE", "Strict"],
    "model": ["ConvertTarget", "ImageInput", "ModelFormat", "ModelSection", "Parity", "TensorSpec"],
    "runtime": ["RuntimeSection"],
    "image": ["ImageSection"],
    "registry": ["RegistrySection"],
    "cron": ["CRON_FIELDS", "parse_cron"],
    "scaling": ["Autoscaling", "ScheduledScaling"],
    "fargate": ["FARGATE_SIZES", "fargate_memory_rule"],
    "aws_secrets": ["SECRET_ENV_HINTS", "SECRET_REF", "secret_resource_arn"],
    "aws": ["Alarms", "AwsSection", "HealthCheck", "Spot"],
    "release": ["ReleaseGates", "ReleaseSection"],
    "cost": ["CostSection"],
    "ci": ["CiSection"],
    "project": ["Config"],
}
EXPORTED = sorted(name for names in SECTIONS.values() for name in names)


@pytest.mark.parametrize(("section", "name"), [(s, n) for s, names in SECTIONS.items() for n in names])
def test_every_previously_exported_name_is_the_section_modules_object(section: str, name: str):
    module = importlib.import_module(f"mldeploy.config.schema.{section}")
    assert getattr(schema, name) is getattr(module, name)
    defined_in = getattr(getattr(module, name), "__module__", None)
    if isinstance(getattr(module, name), type) or callable(getattr(module, name)):
        assert defined_in == module.__name__, f"{name} is defined in {defined_in}, not {module.__name__}"


def test_all_lists_exactly_the_exported_names():
    assert sorted(schema.__all__) == EXPORTED
    exec("from mldeploy.config.schema import *", namespace := {})  # the star import a caller may use
    assert sorted(n for n in namespace if not n.startswith("__")) == EXPORTED


def test_every_section_module_is_listed():
    modules = sorted(p.stem for p in Path(schema.__file__).parent.glob("*.py") if p.stem != "__init__")
    assert modules == sorted(SECTIONS), "a new section module: add its public names to SECTIONS and __init__"


def test_the_root_model_still_validates_through_the_package():
    cfg = schema.Config.model_validate({"name": "app", "model": {"path": "m.onnx"},
                                        "aws": {"autoscaling": {"schedule": [
                                            {"cron": "cron(0 20 ? * mon-fri *)", "min": 1, "max": 2}]}}})
    assert isinstance(cfg.aws, schema.AwsSection) and isinstance(cfg.runtime, schema.RuntimeSection)
    assert cfg.aws.autoscaling.schedule[0].cron == "0 20 ? * MON-FRI *"  # parse_cron from the cron module ran
    with pytest.raises(ValueError, match="cpu 256 takes 512, 1024 or 2048 MiB"):
        schema.Config.model_validate({"name": "app", "model": {"path": "m"}, "aws": {"cpu": 256, "memory": 4096}})
