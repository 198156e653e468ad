"""The HTTP layer: app assembly, routes, security dependency, exception handlers and ASGI middleware."""
