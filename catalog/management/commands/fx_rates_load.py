"""`fx_rates_load PATH.csv`: load FX rates (base,quote,rate,as_of); all rows or, if any is bad, none."""

from __future__ import annotations

from catalog.services import fx_rates_load
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Load FX rates from a CSV file with columns base,quote,rate,as_of; nothing is loaded if a row is bad."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path")

    def handle(self, *args, **options) -> str:
        count = fx_rates_load(path=options["path"])
        return f"Loaded {count} FX rate(s)."
