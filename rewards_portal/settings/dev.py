"""Development: DEBUG on, embedded PostgreSQL/Redis under ./var/ when DATABASE_URL/REDIS_URL are unset."""

from rewards_portal import embedded

from .base import *  # noqa: F403
from .base import PORTAL_DOMAIN, configure_stores, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", f".{PORTAL_DOMAIN}", "[::1]"])
# Outbound HTTP to loopback/private addresses (webhook receivers, fake suppliers) is allowed in dev.
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", default=True)
# Dev mail is written to files under var/mail/ (one per send, codes and claim links included, for trying the
# claim flow) instead of being printed: printed mail went into the web and worker logs unredacted.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = str(embedded.VAR_DIR / "mail")

_stores = embedded.environment()
globals().update(configure_stores(_stores["DATABASE_URL"], _stores["REDIS_URL"]))
# /metrics from this machine without a token (a dev's Prometheus or curl).
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=["ZGV2LW9ubHktaW5zZWN1cmUta2V5LTMyLWJ5dGVzISE="])  # dev only
