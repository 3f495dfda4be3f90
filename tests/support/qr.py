"""Reading QR codes in tests: zbarimg (Debian's zbar-tools, installed by .ci/run)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest


async def decode_qr(png: bytes, tmp_path: Path) -> str:
    """The text of the QR code in ``png``, read by zbarimg (Debian's zbar-tools)."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("zbarimg is required (REQUIRE_SERVICES=1): apt-get install zbar-tools")
        pytest.skip(reason="zbarimg (zbar-tools) is not installed")
    image = tmp_path / "qrcode.png"
    image.write_bytes(png)
    process = await asyncio.create_subprocess_exec(
        zbarimg, "--quiet", "--raw", str(image), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, "no QR code found in the image"
    return out.decode().strip()
