"""The serving image: wheelhouse, build context, Dockerfile, Docker build and registry push.

The public entry points for other areas live in :mod:`mldeploy.image.api` (``build_image``, ``push_image``,
``build_and_push``, ``last_build``); running the image locally is :mod:`mldeploy.local`. Nothing here imports
docker at module level.
"""
