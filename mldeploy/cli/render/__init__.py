"""Human output of the commands: tables and summaries on stderr (``--json`` documents are written by the
commands through :func:`mldeploy.console.emit_json`)."""
