"""Settings package: base.py plus one module per environment (dev, test, production)."""
