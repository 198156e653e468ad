"""Test seams installed as ``Clients`` hooks when their environment variable is set (inert otherwise):
``faults`` (stop after the N-th mutating call) and ``aws_rules`` (reject what AWS documents as invalid, on top of
an emulator that accepts it)."""
