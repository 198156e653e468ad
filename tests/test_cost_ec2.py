"""``cost`` for ``aws.compute: ec2`` (instances = ⌈tasks ÷ tasks per instance⌉ at bundled on-demand prices) and for
``aws.autoscaling.schedule`` (time-weighted tasks over a week), plus the bundled instance table's consistency."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mldeploy.cost import instances, prices
from mldeploy.cost.model import estimate
from mldeploy.cost.schedule import segments, weekly
from mldeploy.errors import ConfigError
from tests.unit.fakes import BASE_CONFIG, project

EC2 = BASE_CONFIG + """aws:
  region: us-east-1
  compute: ec2
  instance_type: {itype}
  gpus: {gpus}
  cpu: {cpu}
  memory: {memory}
  desired_count: {count}
  autoscaling:
    min: 1
    max: 8
"""
NIGHTS = """    schedule:
      - {cron: '0 20 ? * MON-FRI *', min: 1, max: 1}
      - {cron: '0 8 ? * MON-FRI *', min: 4, max: 8}
"""


def config(itype: str = "g5.xlarge", gpus: int = 1, cpu: int = 4096, memory: int = 15360, count: int = 2,
           extra: str = ""):
    return project(EC2.format(itype=itype, gpus=gpus, cpu=cpu, memory=memory, count=count) + extra).config


def test_gpu_tasks_need_one_instance_each_at_the_bundled_price() -> None:
    est = estimate(config(), None)
    ec2 = est.component("ec2")
    usd = prices.bundled().ec2_instances("us-east-1")["g5.xlarge"][2]
    assert usd == 1.006
    assert (ec2.quantity, ec2.monthly) == (2, pytest.approx(2 * 1.006 * 730))
    assert est.component("ebs").quantity == 2 * instances.ROOT_VOLUME_GB
    assert not [c for c in est.components if c.key == "fargate"]
    # one public IPv4 per instance (awsvpc tasks on EC2 get none) + the ALB's
    assert est.assumptions["public_ipv4"]["tasks"] == 2


def test_small_tasks_pack_onto_instances() -> None:
    # c7i.xlarge: 4 vCPU → 4 × 1024-unit tasks; (8192 × 0.975 − 256) = 7731 MiB → 3 × 2048; 4 ENIs − 1 → 3
    cfg = config("c7i.xlarge", 0, 1024, 2048, 4)
    assert instances.tasks_per_instance(cfg.aws) == 3
    ec2 = estimate(cfg, None).component("ec2")
    assert ec2.quantity == math.ceil(4 / 3) == 2
    assert ec2.monthly == pytest.approx(2 * 0.1785 * 730)


def test_spot_is_priced_at_on_demand_and_says_so() -> None:
    cfg = project(EC2.format(itype="g5.xlarge", gpus=1, cpu=4096, memory=15360, count=2) + "  spot: true\n").config
    ec2 = estimate(cfg, None).component("ec2")
    assert ec2.monthly == pytest.approx(2 * 1.006 * 730) and "Spot priced at on-demand" in ec2.formula


def test_no_bundled_price_for_the_region_is_a_clear_error() -> None:
    cfg = config()
    with pytest.raises(ConfigError, match="aws.instance_type: no bundled on-demand price for g5.xlarge in eu-west-1"):
        estimate(cfg, None, region="eu-west-1")


def test_schedule_weights_the_minimum_over_the_week() -> None:
    segs, notes = segments(config(count=1, extra=NIGHTS).aws.autoscaling)
    assert notes == []
    day = next(s for s in segs if s.min == 4)
    assert day.share == pytest.approx(60 / 168)  # weekdays 08:00–20:00 UTC; nights and weekends 1 task
    cfg = config(count=1, extra=NIGHTS)
    est = estimate(cfg, None)
    # before traffic the service wants 1 task: 4 in the day range, 1 at night → 60/168 × 4 + 108/168 × 1
    assert est.component("ec2").quantity == pytest.approx(60 / 168 * 4 + 108 / 168 * 1)
    assert est.assumptions["schedule_weekly_tasks"] == pytest.approx(60 / 168 * 4 + 108 / 168, abs=1e-3)
    fargate = project(BASE_CONFIG + "aws:\n  desired_count: 1\n  autoscaling:\n    min: 1\n    max: 8\n" + NIGHTS)
    fg = estimate(fargate.config, None).component("fargate")
    assert fg.quantity == pytest.approx(60 / 168 * 4 + 108 / 168)
    assert "of the week" in fg.formula


def test_cron_weekly_expansion_and_non_weekly_entries() -> None:
    assert weekly("0 20 ? * MON-FRI *") == [(d - 1) * 1440 + 20 * 60 for d in range(2, 7)]
    assert weekly("0/30 9 ? * SUN *") == [9 * 60, 9 * 60 + 30]
    assert weekly("0 0 1 * ? *") is None and weekly("0 0 ? * 6L *") is None
    monthly = "    schedule:\n      - {cron: '0 0 1 * ? *', min: 0, max: 1}\n"
    segs, notes = segments(config(extra=monthly).aws.autoscaling)
    assert [(s.min, s.max, s.share) for s in segs] == [(1, 8, 1.0)] and "does not repeat weekly" in notes[0]


def test_instance_table_and_prices_agree() -> None:
    table = instances.table()
    bundled = prices.bundled().ec2_instances("us-east-1")
    for name, it in table.items():
        assert name in bundled, f"{name} has no us-east-1 price"
        vcpu, gib, _ = bundled[name]
        assert (vcpu, gib * 1024) == (it.vcpus, it.memory_mib), name
        assert it.source.startswith("https://aws.amazon.com/ec2/instance-types/")
    assert {n for n, t in table.items() if t.gpus} >= {"g4dn.xlarge", "g5.xlarge", "g6.xlarge"}
    data = json.loads((Path(instances.__file__).parent / "instance_types.json").read_text())
    assert data["read"] and data["how_read"]


def test_cost_cli_prints_the_ec2_line(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "mldeploy.yaml").write_text(EC2.format(itype="g5.xlarge", gpus=1, cpu=4096, memory=15360, count=2)
                                            + NIGHTS)
    r = subprocess.run([sys.executable, "-m", "mldeploy", "cost", "--json"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    comps = {c["key"]: c for est in doc["estimates"] for c in est["components"]} if "estimates" in doc else \
        {c["key"]: c for v in doc["variants"].values() for est in v for c in est["components"]}
    assert comps["ec2"]["name"] == "EC2 g5.xlarge on-demand (1 GPU per task)"
    # the service wants 2: 4 in the day range (min 4), 1 at night (max 1)
    assert comps["ec2"]["quantity"] == pytest.approx(60 / 168 * 4 + 108 / 168 * 1)
