"""The pages and APIs people and apps open: installs, sign-in, JS-SDK, the internal API,
the demo and the business-settings page.

Nothing here imports ``gateway.callbacks``.
"""
