"""The base of every tenant API endpoint: credential and scope checks, problem+json errors, cursor pagination,
parsing limits and the OpenAPI hooks. Above tenants and audit (it resolves credentials and writes the API audit
row), below every app that serves an API."""
