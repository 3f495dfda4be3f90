"""The WeCom simulator: WeCom's API, callbacks and limits, for tests, demos and sandbox mode."""
