"""Fargate task sizes: the CPU/memory pairs AWS accepts."""

from __future__ import annotations

# CPU units → allowed memory (MiB), from the Fargate task size table.
FARGATE_SIZES: dict[int, list[int]] = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4096 + 1, 1024)),
    1024: list(range(2048, 8192 + 1, 1024)),
    2048: list(range(4096, 16384 + 1, 1024)),
    4096: list(range(8192, 30720 + 1, 1024)),
    8192: list(range(16384, 61440 + 1, 4096)),
    16384: list(range(32768, 122880 + 1, 8192)),
}


def fargate_memory_rule(cpu: int) -> str:
    """The memory values FARGATE_SIZES allows with ``cpu``, as the table states them: a list where it lists
    values (cpu 256: 512, 1024 or 2048 MiB), else a range and its increment (cpu 2048: 4096–16384 MiB in 1024 steps).

    botocore ecs RegisterTaskDefinitionRequest.memory: "512 (0.5 GB), 1024 (1 GB), 2048 (2 GB) - Available cpu
    values: 256 (.25 vCPU)"; "Between 4096 (4 GB) and 16384 (16 GB) in increments of 1024 (1 GB) - Available cpu
    values: 2048 (2 vCPU)".
    """
    allowed = FARGATE_SIZES[cpu]
    steps = {b - a for a, b in zip(allowed, allowed[1:], strict=False)}
    if len(steps) == 1 and len(allowed) > 7:
        return f"{allowed[0]}–{allowed[-1]} MiB in increments of {steps.pop()}"
    return f"{', '.join(map(str, allowed[:-1]))} or {allowed[-1]} MiB"
