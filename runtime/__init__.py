"""mldeploy serving runtime: the FastAPI server that runs inside the image.

It depends only on what serving needs (FastAPI, uvicorn, numpy, orjson, prometheus-client and the model's
framework) — never on the mldeploy CLI, boto3, docker or typer.
"""

__version__ = "0.1.0"
