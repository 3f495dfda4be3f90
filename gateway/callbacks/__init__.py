"""The callback path: verification, decryption, batching and publishing of WeCom callbacks.

Nothing here calls WeCom or RPC, and nothing imports ``gateway.web``.
"""
