"""Image checks with Pillow: format by content, exact pixel size, square logo, byte size."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from wecom_suite.listing.findings import Finding
from wecom_suite.listing.rules import IMAGE_FORMATS, ImageSpec


def _decode(path: Path) -> tuple[str, tuple[int, int]] | None:
    """The content format and size of a fully decoded image, or None when it does not decode."""
    try:
        with Image.open(path) as image:
            image_format, size = image.format or "", image.size
            # Reading the header is not enough: a truncated file only fails on a full decode.
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return image_format, size


def check_image(path: Path, field: str, spec: ImageSpec, *, square: bool = False) -> list[Finding]:
    """The findings for the image at ``path`` (already known to exist), checked against ``spec``."""
    decoded = _decode(path)
    if decoded is None:
        return [Finding("image.corrupt", field, {"path": path.name})]
    image_format, (width, height) = decoded
    findings: list[Finding] = []
    extensions = IMAGE_FORMATS.get(image_format)
    if extensions is None:
        findings.append(Finding("image.format", field, {"format": image_format or "?"}))
    elif path.suffix.lower() not in extensions:
        findings.append(
            Finding(
                "image.extension",
                field,
                {"format": image_format, "suffix": path.suffix or "∅", "expected": extensions[0]},
            )
        )
    size = {"width": width, "height": height}
    if square and width != height:
        findings.append(Finding("image.square", field, size))
    elif (width, height) != (spec.width, spec.height):
        expected = {"expected_width": spec.width, "expected_height": spec.height}
        findings.append(Finding("image.dimensions", field, {**size, **expected}))
    byte_size = path.stat().st_size
    if byte_size > spec.max_bytes:
        findings.append(
            Finding("image.bytes", field, {"bytes": byte_size, "max_bytes": spec.max_bytes})
        )
    return findings
