"""Security tests only (no app): cross-tenant matrix, scopes, schemathesis, brute force, logs, headers."""
