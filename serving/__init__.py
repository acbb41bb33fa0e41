"""Ray Serve shell of Serendip: HTTP ingress -> batched scorer replicas -> one stateful bandit (WAL, snapshots).

``serving.app:build_app`` is the Serve application builder (``serving/config.yaml``);
``serving.app:serve_main`` runs ``serendip serve``. The Ray-free pieces (``bandit_state``, ``wal``,
``retrieval``, ``experiments``, ``impression_id``, ``api``) are tested without Ray.
"""
