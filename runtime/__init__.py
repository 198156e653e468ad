"""mldeploy serving runtime: the FastAPI server that runs inside the image.

It depends only on what serving needs (FastAPI, uvicorn, numpy, orjson, prometheus-client and the model's
framework) — never on the mldeploy CLI, boto3, docker or typer.

Started as the server (``python -m runtime``, and in its uvicorn workers), the garbage collector stays off until
the model is loaded and warm (``runtime.lifecycle.defer_gc``): the package is imported before anything else of the
server.
"""

from __future__ import annotations

import os
import sys as _sys
from collections.abc import Mapping

__version__ = "0.1.0"


def _server_process(argv: list[str]) -> bool:
    """``argv`` (``sys.orig_argv``) runs ``python [options] -m runtime …``: the image's CMD, ``mldeploy serve``."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return argv[i + 1:i + 2] == ["runtime"]
        if arg.startswith("-m"):
            return arg == "-mruntime"
        if arg in ("-X", "-W"):  # options that take the next argument
            i += 2
            continue
        if arg == "-c" or not arg.startswith("-") or arg == "-":  # a command, a script or stdin
            return False
        i += 1
    return False


def _server_worker(argv: list[str], environ: Mapping[str, str]) -> bool:
    """A uvicorn worker (``workers > 1``: a ``multiprocessing`` spawn child) of such a server process."""
    return "--multiprocessing-fork" in argv and environ.get("MLDEPLOY_STARTUP_GC_OFF") == "1"


_argv = getattr(_sys, "orig_argv", [])
if _server_process(_argv) or _server_worker(_argv, os.environ):
    from runtime.lifecycle import defer_gc

    os.environ["MLDEPLOY_STARTUP_GC_OFF"] = "1"  # inherited by the workers it spawns, and only by them
    defer_gc()
