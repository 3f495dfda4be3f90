"""The ``wecom-suite`` command and the all-in-one runner: the composition root.

Only this package imports the services (and, later, the simulator); nothing imports it.
"""
