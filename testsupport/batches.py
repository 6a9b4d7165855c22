"""Test and benchmark helpers: CSV files in the bulk format, and uploads through the API client."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from batches.csvfile import ALL_COLUMNS


def csv_bytes(rows: Iterable[dict[str, str]], *, columns: list[str] | None = None, bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or ALL_COLUMNS, lineterminator="\r\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def digital_rows(product, count: int, *, amount: str = "10", domain: str = "example.com", **extra) -> list[dict]:
    return [
        {
            "recipient_name": f"Recipient {i}",
            "recipient_email": f"r{i}@{domain}",
            "product_id": str(product.id),
            "amount": amount,
            "currency": product.currency,
            "delivery_method": "email",
            "message": "Thank you!",
            "external_id": f"ext-{i}",
            **extra,
        }
        for i in range(count)
    ]


def upload(api, data: bytes, *, name: str = "batch.csv", **fields):
    """POST /api/v1/batches as multipart (the ApiClient sends JSON by default)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = {"file": SimpleUploadedFile(name, data, content_type="text/csv")}
    form.update({key: str(value).lower() if isinstance(value, bool) else value for key, value in fields.items()})
    return api._client.post("/api/v1/batches", form)
