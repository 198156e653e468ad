"""One module per resource kind: desired state from config + describe + diff → plan steps.

``ORDER`` is the dependency order used by ``up`` (``down`` deletes in reverse).
"""
