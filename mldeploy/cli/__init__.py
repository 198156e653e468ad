"""The command-line interface: the only package that knows Typer, argv, prompts and output formats."""
