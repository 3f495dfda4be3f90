"""``python -m simulator``: the WeCom simulator as its own process."""

from simulator.service import main

main()
