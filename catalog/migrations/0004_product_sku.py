"""Products get a stable human SKU ("amazon-us-usd"): existing products are given one from brand, first country
and currency (numbered when two products would share one), then the column becomes required and unique."""

from django.db import migrations, models
from django.utils.text import slugify


def backfill(apps, schema_editor):
    Product = apps.get_model("catalog", "Product")
    taken: set[str] = set()
    for product in Product.objects.select_related("brand").order_by("created_at", "id"):
        country = product.countries[0] if product.countries else "intl"
        base = slugify(f"{product.brand.slug}-{country}-{product.currency}")[:58].strip("-") or "product"
        candidate, number = base, 1
        while candidate in taken:
            number += 1
            candidate = f"{base}-{number}"
        taken.add(candidate)
        product.sku = candidate
        product.save(update_fields=["sku"])


class Migration(migrations.Migration):
    dependencies = [("catalog", "0003_stored_logos")]

    operations = [
        migrations.AddField(model_name="product", name="sku", field=models.SlugField(max_length=64, null=True, db_index=False)),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(model_name="product", name="sku", field=models.SlugField(max_length=64, unique=True)),
    ]
