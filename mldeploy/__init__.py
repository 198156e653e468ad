"""mldeploy: ML deploy in one command."""

__version__ = "0.1.0"
