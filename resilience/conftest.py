"""Fixtures of the resilience suite (`make test-resilience`); the root conftest's fixtures apply too."""
