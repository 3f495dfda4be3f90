"""token_service: the only component that calls WeCom's token and ticket endpoints."""
