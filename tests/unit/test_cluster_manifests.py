"""The cluster manifests: KubeRay's required fields, the Ray pin everywhere, and the generated files in sync."""

from __future__ import annotations

import copy

import pytest
import yaml

from cluster.manifests import (
    RAY_UP,
    RAYCLUSTER,
    SERVE_CONFIG,
    cluster_serve_config,
    load_documents,
    manifest_problems,
    pinned_ray_version,
    problems,
    ray_up_problems,
    ray_up_storage_problems,
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
      state_dir: /mnt/serendip/serve-state
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


def test_the_committed_rayservice_is_serving_config_yaml_on_the_shared_volume():
    doc = load_documents(RAYCLUSTER.parent / "rayservice.yaml")[0]
    assert doc["spec"]["serveConfigV2"] == cluster_serve_config(SERVE_CONFIG.read_text())
    assert yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"][0]["args"]["state_dir"] == \
        "/mnt/serendip/serve-state"


def test_the_ray_up_yaml_validates_against_rays_schema_and_errors_name_the_field():
    config = yaml.safe_load(RAY_UP.read_text())
    assert ray_up_problems(config, VERSION) == []
    config.pop("provider")
    config["max_workers"] = "ten"
    found = ray_up_problems(config, VERSION)
    assert "ray up: $: 'provider' is a required property" in found
    assert "ray up: $.max_workers: 'ten' is not of type 'integer'" in found


def test_cluster_serve_config_moves_only_relative_paths_and_keeps_comments():
    text = "# a comment\napplications:\n  - args:\n      model: runs/model\n      data: s3://b/shop\n" \
           "      state_dir: /srv/state\n"
    assert cluster_serve_config(text) == ("# a comment\napplications:\n  - args:\n"
                                          "      model: /mnt/serendip/models/minilm\n      data: s3://b/shop\n"
                                          "      state_dir: /srv/state\n")


def rayservice_with(state_dir: str, unmount: str | None = None) -> dict:
    """The RayService on raycluster.yaml's shape, serving one app at ``state_dir``; ``unmount`` drops a group's volume."""
    text = f"applications:\n  - name: serendip\n    import_path: serving.app:build_app\n    args:\n" \
           f"      state_dir: {state_dir}\n"
    doc = render_rayservice(copy.deepcopy(CLUSTER), text)
    spec = doc["spec"]["rayClusterConfig"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        if unmount in ("all", group.get("groupName", "head")):
            group["template"]["spec"]["volumes"] = [{"name": "shared", "emptyDir": {}}]
    return doc


WHERE = "s.yaml RayService: application 'serendip' state_dir"
ON_VOLUME_FIX = ("mount the serendip-shared claim (kuberay/storage.yaml) there or move state_dir under such a mount")


@pytest.mark.parametrize(("state_dir", "unmount", "message"), [
    ("/mnt/serendip/serve-state", None, None),
    ("runs/serve-state", None, None),  # render moves a relative state_dir onto the volume
    ("/var/serendip/state", None,
     f"{WHERE} '/var/serendip/state' is not on a PersistentVolumeClaim or NFS volume mounted in headGroupSpec "
     f"(shared mounts: /mnt/serendip); {ON_VOLUME_FIX}"),
    ("/mnt/serendip/serve-state", "cpu",
     f"{WHERE} '/mnt/serendip/serve-state' is not on a PersistentVolumeClaim or NFS volume mounted in "
     f"workerGroupSpecs[cpu] (shared mounts: none); {ON_VOLUME_FIX}"),
])
def test_a_rayservice_state_dir_must_be_on_a_mounted_shared_volume(state_dir, unmount, message):
    found = manifest_problems("s.yaml", rayservice_with(state_dir, unmount), VERSION)
    assert found[:1] == ([] if message is None else [message])


def test_a_relative_state_dir_in_a_rayservice_is_refused():
    doc = rayservice_with("/mnt/serendip/serve-state")
    doc["spec"]["serveConfigV2"] = doc["spec"]["serveConfigV2"].replace("/mnt/serendip/serve-state", "runs/state")
    assert manifest_problems("s.yaml", doc, VERSION) == [
        f"{WHERE} 'runs/state' is relative, so the bandit's WAL and snapshots land on a pod's ephemeral disk and "
        "die with it; set an absolute path on the shared volume, e.g. /mnt/serendip/serve-state"]


def test_the_ray_up_yaml_must_share_a_filesystem_and_keep_off_spot_nodes():
    config = yaml.safe_load(RAY_UP.read_text())
    assert ray_up_storage_problems(config) == []
    config["initialization_commands"] = []
    config["docker"]["run_options"] = [o for o in config["docker"]["run_options"] if "/mnt/serendip" not in o]
    config["available_node_types"]["cpu_worker"]["node_config"]["InstanceMarketOptions"] = {"MarketType": "spot"}
    assert ray_up_storage_problems(config) == [
        "ray up: initialization_commands must mount a shared filesystem (EFS or NFS) at /mnt/serendip: every "
        "node's own disk is lost with the node, and the bandit's state_dir, the models and the shop must be on "
        "storage all nodes see",
        "ray up: docker.run_options must bind the shared filesystem into the container "
        "(-v /mnt/serendip:/mnt/serendip)",
        "ray up: node type 'cpu_worker' uses spot instances; Serve may place the bandit replica there, and a "
        "reclaimed node drops its unflushed feedback and impressions in flight; use on-demand instances "
        "(remove InstanceMarketOptions)",
    ]
