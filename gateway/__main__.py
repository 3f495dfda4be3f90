"""``python -m gateway``: the callback gateway as its own process."""

from gateway.service import main

main()
