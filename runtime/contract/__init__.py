"""What the CLI and the server agree on, declared once: the serving settings (``runtime.json``).

Pydantic only, so it lives inside the image; ``mldeploy.config.schema`` builds its ``runtime:`` section from it.
"""
