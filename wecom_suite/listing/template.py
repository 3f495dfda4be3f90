"""``wecom-suite listing init``: a commented listing template with every key."""

from __future__ import annotations

TEMPLATE = """\
# WeCom listing of an individual-developer app, checked by `wecom-suite listing check`.
# Every key is required unless marked optional; file paths are relative to this file.
# Rules and their sources: docs/listing.md.

name: 会议助手             # 2–10 characters; letters, digits, spaces; no banned words
slogan: 高效安排会议       # 2–10 characters; no banned words (微信, 免费, 第一, …)
introduction: 一句话说明应用的功能和使用场景，建议约 80 字。  # 4–120 characters
category: 办公             # pick the category by what the app does

logo: images/logo.png      # JPEG or PNG, square 750×750 px, at most 1 MB
screenshots:
  # iOS WeCom screenshots: exactly five, 1242×2208 px, JPEG or PNG, no watermark, ≤ 2 MB each
  mobile: [images/m1.png, images/m2.png, images/m3.png, images/m4.png, images/m5.png]
  # desktop screenshots: 1–5 (five recommended), 1080×832 px, JPEG or PNG, ≤ 2 MB each
  desktop: [images/d1.png]
privacy_policy: privacy.pdf  # the privacy policy you upload

home_url: https://app.example.com/             # opened from the workbench
trusted_domain: app.example.com                # no http(s)://, no path, no port, no IP
install_callback_domain: app.example.com       # no http(s)://, no path, no port
business_settings_url: https://app.example.com/admin   # must start with https://
data_callback_url: https://app.example.com/wecom/data   # https://; must pass URL verification
command_callback_url: https://app.example.com/wecom/command  # https://; URL verification

menus: [首页, 我的]        # optional: custom menu entries; no banned words
# optional: the public IPs your server calls WeCom's APIs from, e.g. [119.29.29.29]
ip_allowlist: []
"""
