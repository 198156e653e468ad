"""Orchestration above ``aws/``, ``image/``, ``release/`` and ``local/`` (below ``cli/``).

Each workflow takes the project, its clients and a ``Ui`` explicitly and returns a result; it never prompts
and never writes ``--json`` output (the CLI renders the result).
"""
