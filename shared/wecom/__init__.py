"""WeCom protocol code shared by the services: callback crypto, callback XML, events."""
