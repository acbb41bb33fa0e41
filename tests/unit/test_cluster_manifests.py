"""The cluster manifests: KubeRay's required fields, the Ray pin everywhere, and the generated files in sync."""

from __future__ import annotations

import copy

import pytest
import yaml

from cluster.manifests import (
    RAY_UP,
    RAYCLUSTER,
    SERVE_CONFIG,
    load_documents,
    manifest_problems,
    pinned_ray_version,
    problems,
    ray_up_problems,
    render,
    render_rayjob,
    render_rayservice,
)

VERSION = pinned_ray_version()
CLUSTER = load_documents(RAYCLUSTER)[0]


def test_the_pin_is_the_installed_ray():
    import ray

    assert VERSION == ray.__version__ == "2.60.0"


def test_every_committed_manifest_ray_up_yaml_and_dockerfile_pass_and_generated_files_are_fresh():
    assert problems() == []


def test_every_manifest_parses_and_names_the_pinned_version():
    kinds = set()
    for path in RAYCLUSTER.parent.glob("*.yaml"):
        for doc in load_documents(path):
            kinds.add(doc["kind"])
            if doc["kind"].startswith("Ray"):
                assert VERSION in yaml.safe_dump(doc)
    assert {"RayCluster", "RayJob", "PersistentVolumeClaim"} <= kinds


def _broken(edit) -> dict:
    doc = copy.deepcopy(CLUSTER)
    edit(doc)
    return doc


def _workers(doc: dict) -> list[dict]:
    return doc["spec"]["workerGroupSpecs"]


W = "x.yaml RayCluster"
CPU = f"{W} workerGroupSpecs[cpu]"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["spec"].update(rayVersion="2.9.0"),
         f"{W}: rayVersion '2.9.0' != pyproject.toml's ray '{VERSION}'"),
        (lambda d: d.update(apiVersion="ray.io/v1alpha1"), f"{W}: apiVersion must be ray.io/v1"),
        (lambda d: d["metadata"].pop("name"), f"{W}: metadata.name is required"),
        (lambda d: d["spec"].pop("headGroupSpec"), f"{W}: headGroupSpec is required"),
        (lambda d: d["spec"]["headGroupSpec"].pop("rayStartParams"),
         f"{W} headGroupSpec: rayStartParams is required (a map, {{}} for none)"),
        (lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
         f"{W} headGroupSpec: rayStartParams values must be strings (KubeRay's map[string]string)"),
        (lambda d: d["spec"].update(workerGroupSpecs=[]), f"{W}: workerGroupSpecs needs at least one worker group"),
        (lambda d: _workers(d)[0].pop("maxReplicas"), f"{CPU}: maxReplicas must be integers"),
        (lambda d: _workers(d)[0].update(replicas=9), f"{CPU}: needs minReplicas <= replicas <= maxReplicas, "
                                                       "got {'replicas': 9, 'minReplicas': 1, 'maxReplicas': 8}"),
        (lambda d: _workers(d)[0].pop("groupName"), f"{W} workerGroupSpecs[None]: groupName is required"),
        (lambda d: _workers(d).pop(1),
         f"{W}: needs a CPU worker group and a GPU worker group (limits nvidia.com/gpu)"),
        (lambda d: _workers(d)[0]["template"]["spec"]["containers"][0].update(image="rayproject/ray:2.9.0"),
         f"{W}: image 'rayproject/ray:2.9.0' is not tagged with Ray {VERSION}"),
        (lambda d: _workers(d)[0]["template"]["spec"]["containers"][0].update(
            env=[{"name": "SERENDIP_SECRET", "value": "hunter2"}]),
         f"{CPU}: env SERENDIP_SECRET has a literal value; use valueFrom.secretKeyRef"),
    ],
)
def test_a_broken_raycluster_is_reported_with_the_field_and_the_fix(edit, message):
    assert message in manifest_problems("x.yaml", _broken(edit), VERSION)


def test_a_rayjob_needs_an_entrypoint():
    job = render_rayjob("j", "", CLUSTER)
    assert manifest_problems("j.yaml", job, VERSION) == ["j.yaml RayJob: spec.entrypoint is required"]


SERVE_TEXT = """\
# serve config
proxy_location: EveryNode
applications:
  - name: serendip
    route_prefix: /
    import_path: serving.app:app
    args:
      model: /mnt/serendip/models/minilm
"""


def test_the_rayservice_carries_the_serve_config_verbatim(tmp_path):
    (tmp_path / "config.yaml").write_text(SERVE_TEXT)
    text = render(serve_config=tmp_path / "config.yaml")["rayservice.yaml"]
    doc = yaml.safe_load(text)
    assert doc["spec"]["serveConfigV2"] == SERVE_TEXT
    assert doc["spec"]["rayClusterConfig"] == CLUSTER["spec"]
    assert manifest_problems("rayservice.yaml", doc, VERSION) == []


def test_a_rayservice_without_applications_is_reported():
    doc = render_rayservice(CLUSTER, "proxy_location: EveryNode\n")
    assert manifest_problems("s.yaml", doc, VERSION) == [
        "s.yaml RayService: serveConfigV2 needs `applications`, each with an import_path"]


@pytest.mark.skipif(not SERVE_CONFIG.exists(), reason="serving/config.yaml not written yet (issue 5, serving)")
def test_the_committed_rayservice_is_serving_config_yaml():
    doc = load_documents(RAYCLUSTER.parent / "rayservice.yaml")[0]
    assert doc["spec"]["serveConfigV2"] == SERVE_CONFIG.read_text()


def test_the_ray_up_yaml_validates_against_rays_schema_and_errors_name_the_field():
    config = yaml.safe_load(RAY_UP.read_text())
    assert ray_up_problems(config, VERSION) == []
    config.pop("provider")
    config["max_workers"] = "ten"
    found = ray_up_problems(config, VERSION)
    assert "ray up: $: 'provider' is a required property" in found
    assert "ray up: $.max_workers: 'ten' is not of type 'integer'" in found
