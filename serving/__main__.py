"""``python -m serving``: run the Serve app (127.0.0.1 by default) on the cluster at ``RAY_ADDRESS``.

What ``serendip submit serve`` runs on a cluster. Locally use ``serendip serve``, which starts Ray with
its token auth on; this entry point joins ``RAY_ADDRESS`` and starts no Ray of its own.
"""

import tyro

from serving.app import ServeConfig, serve_main

raise SystemExit(serve_main(tyro.cli(ServeConfig, prog="python -m serving")))
