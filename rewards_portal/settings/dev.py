"""Development: DEBUG on, embedded PostgreSQL/Redis under ./var/ when DATABASE_URL/REDIS_URL are unset."""

from rewards_portal import embedded

from .base import *  # noqa: F403
from .base import PORTAL_DOMAIN, configure_stores, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", f".{PORTAL_DOMAIN}", "[::1]"])
# Outbound HTTP to loopback/private addresses (webhook receivers, fake suppliers) is allowed in dev.
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", default=True)
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

_stores = embedded.environment()
globals().update(configure_stores(_stores["DATABASE_URL"], _stores["REDIS_URL"]))
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=["ZGV2LW9ubHktaW5zZWN1cmUta2V5LTMyLWJ5dGVzISE="])  # dev only
