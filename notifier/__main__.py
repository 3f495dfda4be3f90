"""``python -m notifier``: the notifier as its own process."""

from notifier.service import main

main()
