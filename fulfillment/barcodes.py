"""Drawing a gift card code as a barcode (QR or Code 128) for the claim page: inline SVG made here, so no image
service ever sees a code."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def barcode_svg(code: str, barcode_format: str) -> str:
    """An inline SVG of `code` in the product's `barcode_format` ("qr", "code128"); "" for none or on failure."""
    try:
        if barcode_format == "qr":
            import segno

            return segno.make(code, error="m", micro=False).svg_inline(scale=5, border=2, title="QR code")
        if barcode_format == "code128":
            import barcode
            from barcode.writer import SVGWriter

            svg = barcode.get("code128", code, writer=SVGWriter()).render(
                {"module_height": 14.0, "write_text": False, "quiet_zone": 4.0}
            )
            text: str = svg.decode()  # python-barcode is untyped: render() gives the SVG as bytes
            return text[text.index("<svg") :]
    except Exception:  # a code the symbology cannot encode: the page shows the text alone
        logger.warning("barcode not drawn", extra={"event": "claim.barcode_failed", "format": barcode_format})
    return ""
