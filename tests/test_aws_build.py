"""`mldeploy up` end to end with a real image: package → docker build → push to a local registry → plan → apply
(moto). moto's ECR cannot take pushes (its token names a host that does not exist), so `registry.url` points at
the local registry fixture; moto never pulls the image, the task definition must still name exactly what was pushed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_up_builds_pushes_and_deploys_the_digest(tmp_path, aws, base_image, registry, moto_server, docker_client):
    project = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris-sklearn", project,
                    ignore=shutil.ignore_patterns(".mldeploy", "__pycache__", "README.md", ".github"))
    if not (project / "model.pkl").exists():
        subprocess.run([sys.executable, "make_model.py"], cwd=project, check=True, capture_output=True, timeout=600)
    cfg = yaml.safe_load((project / "mldeploy.yaml").read_text())
    cfg["name"] = "aws-build-iris"
    cfg["registry"] = {"url": registry.host}
    cfg["image"]["base"] = base_image
    (project / "mldeploy.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(aws, MLDEPLOY_POLL_S="0.2", NO_COLOR="1", CI="true", COLUMNS="200")
    try:
        proc = subprocess.run([sys.executable, "-m", "mldeploy", "up", "--no-wait", "--json"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-4000:]
        result = _last_json(proc.stdout)
        image = result["image"]
        assert image.startswith(f"{registry.host}/aws-build-iris@sha256:"), image
        digest = image.split("@", 1)[1]
        tags = registry.tags("aws-build-iris")
        assert tags and registry.manifest_digest("aws-build-iris", tags[0]) == digest
        td = moto_server.client("ecs").describe_task_definition(taskDefinition="aws-build-iris")["taskDefinition"]
        assert td["containerDefinitions"][0]["image"] == image
        assert (td["cpu"], td["memory"]) == ("256", "512")
        # ECR is not used when registry.url is set: no repository was created
        assert moto_server.client("ecr").describe_repositories()["repositories"] == []
    finally:
        for img in docker_client.images.list(name=f"{registry.host}/aws-build-iris"):
            for tag in img.tags:
                docker_client.images.remove(tag, force=True)


def _last_json(text: str) -> dict:
    """The last JSON document on stdout (the build step may print its own before up's)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) != -1:
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs[-1]
