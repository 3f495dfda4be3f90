"""``python -m wecom_suite``: same as the ``wecom-suite`` command."""

from wecom_suite.cli import main

main()
