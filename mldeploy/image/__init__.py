"""Image build and local deployment: wheelhouse, build context, Dockerfile, Docker build/push/run, serve, predict.

The public entry points for other areas live in :mod:`mldeploy.image.api` (``build_image``, ``push_image``,
``build_and_push``) and :mod:`mldeploy.local.container` (``up_local``). Nothing here imports docker at module level.
"""
