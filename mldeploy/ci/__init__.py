"""CI integration: the generated GitHub Actions workflow and the OIDC trust policy for its AWS role.

The in-process side of CI (no prompts, ``::group::``, annotations, ``$GITHUB_OUTPUT``, step summaries)
lives in :mod:`mldeploy.console`; :mod:`mldeploy.ci.outputs` builds the markdown summaries on top of it.
"""
