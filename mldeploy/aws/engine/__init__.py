"""AWS changes as data: a plan of frozen steps (``model``), read through a cached remote (``remote``), run by one
interpreter (``executor``); ``stack`` orders the resource families (``aws/resources/``) into ``up``/``down`` plans.

Shaped after AWS Chalice's ``deploy/models.py`` + ``executor.py``: instructions are comparable values, references
to values that earlier calls produce are ``Ref``s resolved at execute time, and tests compare plans as data.
"""
