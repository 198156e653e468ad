"""Where releases happen: the ``ReleaseTarget`` protocol (``base``), AWS (``aws``) and the local server (``local``)."""
