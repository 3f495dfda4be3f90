"""notifier: sends notification requests through WeCom's message APIs (design.md)."""
