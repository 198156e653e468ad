"""Run once at image build time, as root: write bytecode for the modules the server imports at start-up.

The unprivileged server user cannot write ``__pycache__`` into the interpreter's or the venv's folders, and
base images often ship the standard library without bytecode (the official python images delete it), so
without this every container start would compile those modules again (slower start→ready).
"""

import importlib
import pkgutil
import sys

MODULES = [
    "runtime.http.app", "runtime.http.rest", "runtime.__main__", "uvicorn.main", "uvicorn.config", "uvicorn.server",
    "uvicorn.loops.auto", "uvicorn.loops.asyncio", "uvicorn.loops.uvloop", "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.h11_impl", "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on",
    "uvicorn.logging", "multiprocessing.spawn", "concurrent.futures.thread", "json", "logging.config",
    # binding the port to a host given as text encodes it with the IDNA codec (socket → encodings.idna →
    # stringprep): without their bytecode every start compiled stringprep again (~13 ms)
    "encodings.idna", "stringprep",
]

try:
    import runtime.loaders

    MODULES += [f"runtime.loaders.{m.name}" for m in pkgutil.iter_modules(runtime.loaders.__path__)]
except ImportError:
    pass

done = 0
for name in MODULES:
    try:
        importlib.import_module(name)
        done += 1
    except Exception:  # noqa: BLE001 - a loader whose framework is not installed in this image
        pass
print(f"warm_imports: {done}/{len(MODULES)} modules, {len(sys.modules)} loaded", file=sys.stderr)
