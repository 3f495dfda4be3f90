"""The callback gateway: WeCom callbacks in, verified and normalized events out."""
