"""Release management: canary, promote, rollback, history and the deployment lock.

``ops`` writes each operation once against a ``targets.base.ReleaseTarget`` (AWS: a second ECS service behind a
second target group, weighted on the ALB listener; local: the runtime's ``routing.json``) and a
``history.HistoryStore`` (``stores``: SSM Parameter Store under ``names.ssm_prefix`` — CI runners are ephemeral —
or the local state file). ``state`` is the pure state machine; ``lock`` the SSM deployment lock; ``progressive``
``canary --auto``. Entry points for the CLI: ``mldeploy.workflows.release``.
"""
