"""``python -m serving`` == ``serendip serve``: run the Serve app locally (127.0.0.1 by default)."""

import tyro

from serving.app import ServeConfig, serve_main

raise SystemExit(serve_main(tyro.cli(ServeConfig, prog="python -m serving")))
