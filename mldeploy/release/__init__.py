"""Release management: canary, promote, rollback, history and the deployment lock.

AWS: a second ECS service (``names.canary_service``) behind a second target group (``names.canary_target_group``);
the ALB listener's weighted forward action splits traffic. Local: ``routing.json`` in the runtime's models folder.
History and the lock live in SSM Parameter Store under ``names.ssm_prefix`` (CI runners are ephemeral).
"""
