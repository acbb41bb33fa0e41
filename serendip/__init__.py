"""The front door: the ``serendip`` CLI and the demo loop. It only dispatches to the layers."""
