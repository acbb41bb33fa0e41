"""Running Serendip on a real Ray cluster: job submission through the Ray Jobs API, KubeRay and `ray up` configs.

``cluster.submit`` (``serendip submit``), ``cluster.jobs`` (``serendip jobs``) and ``cluster.manifests``
(generation and checks of ``cluster/kuberay/*.yaml``). Nothing here joins a cluster as a driver: it talks
HTTP to the head's job server. See cluster/README.md.
"""
