"""Helpers for the test suites, bench/ and resilience/: never imported by production code.

Fixtures stay in the conftest.py files; what they build on lives here, one concern a module:
`waiting` (poll until a condition holds), `problems` (assert a problem+json answer), `api` (API clients in
process and over real HTTP), `servers` (real HTTP servers on 127.0.0.1: the app, webhook receivers, fake
vendors), `smtp` (a real SMTP sink), `workers` (real Celery worker processes), `browser` (headless Chromium
through Playwright), `portal` (staff users and signed-in portal clients), `catalog` (catalogues built
through the catalogue services), `funds` (balances as a tenant reads them), `orders` (order bodies),
`batches` (bulk CSV files and uploads), `exports` (CSV downloads), `urls` (the API routes of the URLconf).
"""
