"""Settings shared by every environment; everything comes from the environment through django-environ."""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional local overrides; real env wins

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
# Portal host names are <slug>.<PORTAL_DOMAIN>; the bare PORTAL_DOMAIN is the operator console.
PORTAL_DOMAIN = env("PORTAL_DOMAIN", default="localhost")
# Public base URL of this installation (claim links and emails are built from it).
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "accounts",
    "core",
    "catalog",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / ReDoc assets served from /static/, never a CDN
    "anymail",
    "portal",  # the staff portal on tenant hosts: views, templates and static only (no models)
    "observability",  # /metrics, the business gauges (per-schema shares in public), workers' metrics port, tracing
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "accounts",
    "funds",
    "programs",
    "people",
    "orders",
    "automations",
    "fulfillment",
    "webhooks",
    "audit",
    "batches",
    "points",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New tenants clone this fully migrated template schema and fake-apply migrations: provisioning stays
# O(1) in the number of migrations (see tenants.services.tenant_template_ensure).
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
# Set search_path only when the schema changes, not before every query (halves round trips).
TENANT_LIMIT_SET_CALLS = True
# `platform_migrate` migrates this many tenant schemas at once, each in its own process (each holds one
# database connection). Default: the CPUs of this machine, at most 4.
PLATFORM_MIGRATE_PROCESSES = env.int("PLATFORM_MIGRATE_PROCESSES", default=min(4, os.cpu_count() or 1))
# Reads of list pages, reports and exports may go to a replica (DATABASE_REPLICA_URLS); then tenants' own router.
DATABASE_ROUTERS = ["core.db_routing.ReplicaRouter", "django_tenants.routers.TenantSyncRouter"]
AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    "core.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware_security.ContentSecurityPolicyMiddleware",  # CONTENT_SECURITY_POLICY below
    "core.middleware_security.RejectNulBytesMiddleware",  # NUL in a path/query string: 400/422, never a 500
    "whitenoise.middleware.WhiteNoiseMiddleware",  # serves /static/ from gunicorn (docs UI, admin)
    "tenants.middleware.TenantRoutingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.PortalLocaleMiddleware",  # portal pages: the staff member's language, the company's zone
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "rewards_portal.urls"
WSGI_APPLICATION = "rewards_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    }
]

# --- Data stores ------------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", default="")
REDIS_URL = env("REDIS_URL", default="")


def database_config(url: str) -> dict:
    """DATABASES['default'] from a URL, on django-tenants' backend; a socket directory may be %-encoded."""
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = "tenants.session_backend"  # django-tenants' backend; skips a SET search_path it already sent
    config["HOST"] = unquote(config.get("HOST") or "")
    config["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    config["CONN_HEALTH_CHECKS"] = True
    pooling = env.bool("DB_TRANSACTION_POOLING", default=False)
    if env.bool("DB_PREPARED_STATEMENTS", default=not pooling):
        # Parameters bound by the server, and psycopg prepares a statement the fifth time a connection sends it:
        # PostgreSQL then skips parsing it and, once its generic plan is as good, planning it. An order's ~10
        # statements: 20-33 % less PostgreSQL CPU per order; bulk chunks within the noise, deliveries neutral or
        # better (bench/PROFILE-orders.md). On by default on a direct connection, off behind the pooler. Reads whose
        # plan depends on the value (searches, rewards by status) are sent unprepared: core.db.custom_plans.
        if pooling:
            raise ImproperlyConfigured(
                "DB_PREPARED_STATEMENTS needs a direct connection: behind DB_TRANSACTION_POOLING every statement is "
                "sent with its SET LOCAL search_path in one query, which cannot be prepared"
            )
        config.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    if pooling:
        # Behind PgBouncer in transaction mode: the schema is set inside each transaction (SET LOCAL), never on
        # the session, and no server-side cursors (a cursor outlives the transaction that the pooler ends).
        config["ENGINE"] = "tenants.pooled_backend"
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
    return config


def celery_broker_url(redis_url: str) -> str:
    """kombu spells a unix-socket Redis as redis+socket://, and its database as `virtual_host` (it ignores
    `?db=`: every bench run would otherwise publish into the dev worker's queues on database 0)."""
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    query = [("virtual_host" if name == "db" else name, value) for name, value in parse_qsl(parts.query)]
    return f"redis+socket://{parts.netloc}{parts.path}" + (f"?{urlencode(query)}" if query else "")


def redis_url_with_db(redis_url: str, db: int) -> str:
    """The same Redis server, another logical database (redis://h:p/N or unix://path?db=N)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db={db}"
    return urlunsplit(parts._replace(path=f"/{db}"))


# The Celery broker: Redis (REDIS_URL) unless this names another, e.g. RabbitMQ: amqp://user:password@host:5672/vhost
CELERY_BROKER_URL_SETTING = env("CELERY_BROKER_URL", default="")
# Celery's queues. Separate queues so a flood of bulk work never delays deliveries or webhooks.
CELERY_QUEUE_NAMES = ("default", "delivery", "webhooks", "bulk")


def broker_is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))


def celery_broker_settings(broker_url: str) -> dict:
    """The queues and transport options that fit the broker.

    On RabbitMQ the queues are durable **quorum** queues (replicated by Raft across the cluster's nodes, which
    classic mirrored queues no longer are), each on a topic exchange of its own name: Celery then delays
    countdown/eta tasks (fulfilment and webhook retries) with RabbitMQ's native delayed delivery instead of
    holding them in a worker's memory, which quorum queues require (they have no global prefetch). Publisher
    confirms make a publish return only once the broker has the message (and, for a quorum queue, a majority
    of its nodes). On Redis they are plain lists, as before; the visibility timeout brings back a message
    whose worker died after taking it (tasks are acknowledged late).
    """
    from kombu import Exchange, Queue

    if broker_is_amqp(broker_url):
        queues = [
            Queue(
                name,
                Exchange(name, type="topic", durable=True),
                routing_key=name,
                durable=True,
                queue_arguments={"x-queue-type": "quorum"},
            )
            for name in CELERY_QUEUE_NAMES
        ]
        return {"CELERY_TASK_QUEUES": queues, "CELERY_BROKER_TRANSPORT_OPTIONS": {"confirm_publish": True}}
    return {
        "CELERY_TASK_QUEUES": [Queue(name) for name in CELERY_QUEUE_NAMES],
        "CELERY_BROKER_TRANSPORT_OPTIONS": {"visibility_timeout": 3600},
    }


# Streaming replicas of DATABASE_URL (comma-separated URLs): list pages, reports and exports read from them
# (core/db_routing.py). Empty = every read goes to the primary.
DATABASE_REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", default=[])
# A replica whose replay is further behind than this many seconds (measured on the replica, once a second per
# process) is passed over until it catches up, with a warning (event db.replica_lagging). 0 = never checked.
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=30.0)


def database_configs(database_url: str) -> dict:
    """DATABASES: the primary, and `replica0`, `replica1`, … (never migrated; in tests, mirrors of the primary)."""
    databases = {"default": database_config(database_url)}
    for number, url in enumerate(DATABASE_REPLICA_URLS):
        databases[f"replica{number}"] = {**database_config(url), "TEST": {"MIRROR": "default"}}
    return databases


def configure_stores(database_url: str, redis_url: str) -> dict:
    """The settings that depend on the server URLs; environment modules call this once."""
    broker_url = CELERY_BROKER_URL_SETTING or celery_broker_url(redis_url)
    return {
        **celery_broker_settings(broker_url),
        "REDIS_URL": redis_url,
        "DATABASES": database_configs(database_url),
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_FUNCTION": "django_tenants.cache.make_key",
                "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
            }
        },
        "CELERY_BROKER_URL": broker_url,
    }


DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The languages recipients and staff can read everything in (catalogues under locale/, compiled by scripts/venv.sh
# with Babel: see docs/operations.md). A reward's language: recipient, program, tenant, then the browser.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ms", "Bahasa Melayu")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"

# --- Portal sign-in (sessions live in each tenant's live schema; cookies are host-only) ---------------
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
# Sessions end when the browser closes, after this much inactivity, and at the latest after SESSION_COOKIE_AGE.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
PORTAL_SESSION_IDLE_TIMEOUT_SECONDS = env.int("PORTAL_SESSION_IDLE_TIMEOUT_SECONDS", default=30 * 60)
# Failed sign-ins (password or two-factor code) per (tenant, email), and per client IP, per window; then 429.
PORTAL_LOGIN_FAILURE_LIMIT = env.int("PORTAL_LOGIN_FAILURE_LIMIT", default=5)
PORTAL_LOGIN_IP_FAILURE_LIMIT = env.int("PORTAL_LOGIN_IP_FAILURE_LIMIT", default=30)
PORTAL_LOGIN_FAILURE_WINDOW_SECONDS = env.int("PORTAL_LOGIN_FAILURE_WINDOW_SECONDS", default=15 * 60)
# Operators (console and /admin) must enrol in two-factor sign-in before anything else (portal/console/auth.py).
OPERATOR_REQUIRE_TWO_FACTOR = env.bool("OPERATOR_REQUIRE_TWO_FACTOR", default=True)
# Password-reset emails requested per client IP per window (stops the form being used to spam inboxes).
PORTAL_PASSWORD_RESET_LIMIT = env.int("PORTAL_PASSWORD_RESET_LIMIT", default=10)
# Links in password-reset and invitation emails stay valid this long (Django's setting, in seconds).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3 * 24 * 3600)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy header on every response (core.middleware_security); empty = no header.
CONTENT_SECURITY_POLICY = env(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
)

# Fernet keys (comma-separated) for codes and secrets at rest; the first encrypts, all decrypt (rotation).
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[])

# --- Funds ------------------------------------------------------------------------------------------
# The operator's bank details shown on the portal's Funds page (a `\n` in the value is a line break; `{reference}`
# becomes the tenant's transfer reference, e.g. ACME-FUNDS); empty: tenants are told to ask through the form.
FUNDS_DEPOSIT_INSTRUCTIONS = env.str("FUNDS_DEPOSIT_INSTRUCTIONS", default="", multiline=True)

# --- Orders -----------------------------------------------------------------------------------------
# Fee on cross-currency orders, in percent of the converted amount (recorded on the order).
FX_FEE_PERCENT = env.float("FX_FEE_PERCENT", default=1.0)
# How long claim links stay valid.
CLAIM_LINK_TTL_DAYS = env.int("CLAIM_LINK_TTL_DAYS", default=365)
# Claim page requests per client address per minute: a flood guard, generous (an office shares one address).
CLAIM_RATE_LIMIT_PER_MINUTE = env.int("CLAIM_RATE_LIMIT_PER_MINUTE", default=300)
# Dead claim links (unknown, expired, used) per client address per minute; beyond it every claim request is 429.
CLAIM_FAILURE_LIMIT_PER_MINUTE = env.int("CLAIM_FAILURE_LIMIT_PER_MINUTE", default=30)
# How long Idempotency-Key outcomes are kept (at least 24 h per the API contract).
IDEMPOTENCY_KEY_TTL = timedelta(hours=max(24, env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)))

# --- Bulk CSV batches -------------------------------------------------------------------------------
# Upload limits. 50 MB fits BATCH_MAX_ROWS rows of ~500 bytes (a typical row is ~180); uploads over Django's
# FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) are spooled to a temporary file and read line by line, never whole.
BATCH_MAX_FILE_BYTES = env.int("BATCH_MAX_FILE_BYTES", default=50 * 1024 * 1024)
BATCH_MAX_ROWS = env.int("BATCH_MAX_ROWS", default=100_000)
BATCH_MAX_CELL_CHARS = env.int("BATCH_MAX_CELL_CHARS", default=2000)
# One line of the file; longer is refused as a whole ("a huge row") before it is parsed.
BATCH_MAX_ROW_BYTES = env.int("BATCH_MAX_ROW_BYTES", default=32 * 1024)
# A batch task creates orders this long, then queues a fresh task for the rest (stays under the soft limit).
BATCH_TASK_SECONDS = env.float("BATCH_TASK_SECONDS", default=20.0)
# A confirmed/processing batch with no chunk for this long is re-queued by the sweeper (a worker died).
BATCH_STALE_SECONDS = env.int("BATCH_STALE_SECONDS", default=120)
# Chunks of one batch processed at once (bulk tasks per confirmed batch): 2 overlaps one chunk's COMMIT with the
# next one's CPU (batches.processing); more only helps with more cores and a faster disk.
BATCH_PARALLEL_CHUNKS = env.int("BATCH_PARALLEL_CHUNKS", default=2)

# --- Fulfilment -------------------------------------------------------------------------------------
# A worker's claim on a reward in `processing`; after this the sweeper lets another worker take it.
FULFILMENT_LEASE_SECONDS = env.int("FULFILMENT_LEASE_SECONDS", default=120)
# Retryable supplier errors: exponential backoff with jitter from BASE up to MAX, then the reward fails.
FULFILMENT_MAX_RETRIES = env.int("FULFILMENT_MAX_RETRIES", default=8)
# Claims of one reward (task runs, redeliveries, sweeps) before the sweeper gives up and says so on the reward.
FULFILMENT_MAX_ATTEMPTS = env.int("FULFILMENT_MAX_ATTEMPTS", default=20)
FULFILMENT_RETRY_BASE_SECONDS = env.float("FULFILMENT_RETRY_BASE_SECONDS", default=2.0)
FULFILMENT_RETRY_MAX_SECONDS = env.float("FULFILMENT_RETRY_MAX_SECONDS", default=600.0)
# A physical gift returned to sender: `refund` puts what the reward cost back into available funds
# (once); `keep` moves no money (the partner does not credit returns). The reward ends failed/canceled.
SHIPMENT_RETURN_POLICY = env("SHIPMENT_RETURN_POLICY", default="refund")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="rewards@localhost")
# Real providers through django-anymail: set EMAIL_BACKEND (e.g. anymail.backends.postmark.EmailBackend) and
# ANYMAIL_* credentials; bounce webhooks post to /anymail/<esp>/tracking/ with this basic-auth secret.
ANYMAIL = {
    "WEBHOOK_SECRET": env("ANYMAIL_WEBHOOK_SECRET", default=""),
    "POSTMARK_SERVER_TOKEN": env("ANYMAIL_POSTMARK_SERVER_TOKEN", default=""),
    "MAILGUN_API_KEY": env("ANYMAIL_MAILGUN_API_KEY", default=""),
    "SENDGRID_API_KEY": env("ANYMAIL_SENDGRID_API_KEY", default=""),
}
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Dotted path of the SMS provider backend (fulfillment.sms.*).
SMS_BACKEND = env("SMS_BACKEND", default="fulfillment.sms.ConsoleSmsBackend")
# Test-only fault injection (core/faults.py): never on outside the test settings, which read TEST_FAULT_INJECTION.
FAULT_INJECTION = False
# --- Suppliers and SMS provider (code inventory, HTTP vendors, HTTP SMS) -----------------------------
# fulfillment.sms.HttpSmsBackend: a Twilio-style REST API (form POST To/From/Body, HTTP basic auth).
# `{account}` in the URL is replaced by the account id, e.g.
# https://api.twilio.com/2010-04-01/Accounts/{account}/Messages.json
SMS_HTTP_URL = env("SMS_HTTP_URL", default="")
SMS_HTTP_ACCOUNT = env("SMS_HTTP_ACCOUNT", default="")
SMS_HTTP_TOKEN = env("SMS_HTTP_TOKEN", default="")  # a secret: only from the environment
SMS_HTTP_FROM = env("SMS_HTTP_FROM", default="")  # the sender number (E.164) or messaging service id
SMS_HTTP_TIMEOUT_SECONDS = env.float("SMS_HTTP_TIMEOUT_SECONDS", default=10.0)
# Keys the hash that refuses duplicate inventory codes (catalog.InventoryCode.code_hash). Never change it
# once codes are stored: duplicates of stored codes would no longer be recognised.
INVENTORY_CODE_HASH_KEY = env("INVENTORY_CODE_HASH_KEY", default=SECRET_KEY)
# --- end suppliers and SMS provider ------------------------------------------------------------------

# --- API ----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasTenantCredential"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",  # DRF's, with a nesting bound (MAX_JSON_DEPTH): never a RecursionError
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "rewards_portal API",
    "DESCRIPTION": (
        "Multi-tenant gift card and rewards platform. Authenticate with `Authorization: Bearer rp_live_…` "
        "(or `rp_test_…` for the sandbox twin), or exchange a key for a short-lived token at "
        "`POST /api/v1/tokens`. Errors are RFC 9457 problem+json with a stable `code` and `retryable`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrderTypeEnum": ["digital", "link", "physical"],
        "ProductTypeEnum": "catalog.models.ProductType",
    },
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # The docs page loads its JS/CSS from drf-spectacular-sidecar (local static files), not jsdelivr.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl None: Swagger UI would otherwise send the schema URL to validator.swagger.io for a badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Every operation documents its problem+json error responses (security/tests run schemathesis on them).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.problem_responses_hook",
    ],
}
# Requests per minute per API key (fixed window in Redis); 429 with Retry-After beyond it.
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=6000)
# Failed credential guesses (a secret that did not verify) allowed per window, counted per client address and
# per presented key id; beyond that a failing request gets 429 instead of 401. A valid credential is never refused.
AUTH_FAILURE_LIMIT = env.int("AUTH_FAILURE_LIMIT", default=20)
AUTH_FAILURE_WINDOW_SECONDS = env.int("AUTH_FAILURE_WINDOW_SECONDS", default=300)
# Lifetime of bearer tokens from POST /api/v1/tokens.
ACCESS_TOKEN_TTL = timedelta(seconds=env.int("ACCESS_TOKEN_TTL_SECONDS", default=3600))
# Reverse proxies you run in front of the app, each appending to X-Forwarded-For: the client address (failure
# throttle, key IP allowlists, audit) is that many entries from the right. 0 = REMOTE_ADDR, so behind a proxy all
# clients share its address. Never more than you run: entries further left are whatever the client sent.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Metrics and tracing ------------------------------------------------------------------------------
# GET /metrics answers a request with `Authorization: Bearer <METRICS_TOKEN>`, or from an address in
# METRICS_ALLOWED_NETWORKS (CIDRs; the client address as TRUSTED_PROXY_COUNT defines it); anyone else, and
# everyone while both are empty, gets a 404.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])


def networks_checked(name: str, networks: list[str]) -> list[str]:
    """CIDRs, each checked at start: a malformed one stops the process with its name rather than matching nothing,
    and one with host bits set (10.0.0.1/8, most likely a typo for 10.0.0.0/8 or 10.0.0.1/32) is refused too,
    although core.networks would read it as its network."""
    for network in networks:
        try:
            ipaddress.ip_network(network)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from exc
    return networks


networks_checked("METRICS_ALLOWED_NETWORKS", METRICS_ALLOWED_NETWORKS)
# How often beat refreshes the business gauges (open rewards, lags, backlog, ledger totals): each refresh
# recomputes only the tenant schemas written since the last one (observability.snapshot).
METRICS_SNAPSHOT_SECONDS = env.int("METRICS_SNAPSHOT_SECONDS", default=30)
# A schema's share is recomputed at least this often even without writes (the safety net behind the per-schema
# write notes), a few schemas per refresh.
METRICS_RECOMPUTE_SECONDS = env.int("METRICS_RECOMPUTE_SECONDS", default=3600)
# A Celery worker serves its own metrics on this port when set (0 = off; see docs/operations.md, Metrics).
METRICS_WORKER_PORT = env.int("METRICS_WORKER_PORT", default=0)
METRICS_WORKER_ADDRESS = env("METRICS_WORKER_ADDRESS", default="127.0.0.1")
# OpenTelemetry spans for requests, tasks and SQL (needs requirements-tracing.txt); off by default.
OTEL_TRACING = env.bool("OTEL_TRACING", default=False)
OTEL_EXPORTER_OTLP_ENDPOINT = env("OTEL_EXPORTER_OTLP_ENDPOINT", default="")

# --- Celery -------------------------------------------------------------------------------------------
CELERY_TASK_ACKS_LATE = True  # tasks are idempotent (services guard on state), so redelivery is safe
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# tenant-schemas-celery: cache the Tenant row per schema instead of a query before every task.
CELERY_TASK_TENANT_CACHE_SECONDS = 300
CELERY_TASK_ROUTES = {
    "fulfillment.tasks.*": {"queue": "delivery"},
    "webhooks.tasks.*": {"queue": "webhooks"},
    "batches.tasks.*": {"queue": "bulk"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")
# Run beat on two machines or more: one leads (a PostgreSQL advisory lock) and each period is claimed once in
# core_beat_entry (core.beat). No schedule file. The leader's session ends BEAT_LEASE_SECONDS after it stops
# pinging (a lost machine); a standby polls for the lock every BEAT_STANDBY_POLL_SECONDS.
CELERY_BEAT_SCHEDULER = "core.beat:LeaderScheduler"
BEAT_LEASE_SECONDS = env.float("BEAT_LEASE_SECONDS", default=30)
BEAT_STANDBY_POLL_SECONDS = env.float("BEAT_STANDBY_POLL_SECONDS", default=2)
# The hourly reward totals rebuild recomputes the schemas whose hourly rollup changed, and every other schema once
# per this period (the safety net, spread evenly over it: a day's worth is about 1/24 of the schemas an hour).
REWARD_TOTALS_RECOMPUTE_SECONDS = max(3600, env.int("REWARD_TOTALS_RECOMPUTE_SECONDS", default=86400))
CELERY_BEAT_SCHEDULE: dict = {
    "worker-heartbeat": {"task": "core.tasks.worker_heartbeat", "schedule": 15.0},
    "fulfilment-sweep": {"task": "fulfillment.tasks.fulfilment_sweep", "schedule": 10.0},
    # Birthdays, anniversaries and other dated automations: what is due in each tenant (automations.running).
    # Each run is claimed once, so a late or doubled tick sends nothing twice; a skipped one is caught up the
    # same local day.
    # Rewards delivered longer ago than a tenant's retention period lose their recipient's details (the schemas
    # where one is due: tenants.due).
    "recipient-retention": {"task": "orders.tasks.recipient_retention_task", "schedule": 3600.0},
    "automations-schedule": {
        "task": "automations.tasks.automations_schedule",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Publishes due webhook deliveries (long retries, and any whose task was lost); expires if not run.
    "webhook-deliveries-sweep": {
        "task": "webhooks.tasks.webhook_deliveries_sweep",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    # Re-queues bulk batches whose worker died mid-batch (see BATCH_STALE_SECONDS).
    "batches-sweep": {"task": "batches.tasks.batches_sweep", "schedule": 30.0, "options": {"expires": 30.0}},
    "idempotency-purge": {"task": "orders.tasks.idempotency_purge_task", "schedule": 3600.0},
    # The business gauges of /metrics (observability.snapshot): a scrape reads them, never the tenants' tables.
    "metrics-snapshot": {
        "task": "observability.tasks.metrics_snapshot_refresh",
        "schedule": float(METRICS_SNAPSHOT_SECONDS),
        "options": {"expires": float(METRICS_SNAPSHOT_SECONDS)},
    },
    # Claim links past their claim-by date become `expired` (and their unclaimed value is released).
    "rewards-expire": {"task": "orders.tasks.rewards_expire_task", "schedule": 300.0, "options": {"expires": 300.0}},
    # Orders and bulk batches left waiting for approval past their policy's expires_after_days: funds released.
    "order-approvals-expire": {"task": "orders.tasks.order_approvals_expire_task", "schedule": 300.0},
    "batch-approvals-expire": {"task": "batches.tasks.batch_approvals_expire_task", "schedule": 300.0},
    # Reminders of unclaimed claim links on each program's schedule (fulfillment.reminders).
    "reminders-sweep": {"task": "fulfillment.tasks.reminders_sweep", "schedule": 900.0, "options": {"expires": 900.0}},
    # Points: the expiry notice (POINTS_EXPIRY_NOTICE_DAYS before) and expiry itself.
    "points-expiry": {"task": "points.tasks.points_expiry_sweep", "schedule": 3600.0, "options": {"expires": 3600.0}},
    # Folds the dashboard/report rollups' deltas in (orders.rollups): readers stay exact either way.
    "rollups-compact": {"task": "orders.tasks.rollups_compact_task", "schedule": 60.0, "options": {"expires": 60.0}},
    # The dashboard's all-time reward totals recomputed from the hourly rollup (heals a rolling deploy's drift), in
    # the schemas whose rollup changed and a few more (REWARD_TOTALS_RECOMPUTE_SECONDS).
    "reward-totals-rebuild": {
        "task": "orders.tasks.reward_totals_rebuild_task",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}
# Days before points expire that their holder is emailed (and a points.expiring event sent), once per award.
POINTS_EXPIRY_NOTICE_DAYS = env.int("POINTS_EXPIRY_NOTICE_DAYS", default=14)
# The points page's emailed sign-in links: minutes one stays valid, and links asked for per address and per client
# address per hour.
POINTS_SIGN_IN_TTL_MINUTES = env.int("POINTS_SIGN_IN_TTL_MINUTES", default=30)
POINTS_SIGN_IN_LIMIT_PER_HOUR = env.int("POINTS_SIGN_IN_LIMIT_PER_HOUR", default=5)

# --- Webhooks -----------------------------------------------------------------------------------------
# Outbound HTTP may reach loopback/private addresses (the SSRF guard, webhooks/outbound.py): off unless an
# environment module turns it on (dev and test do; production reads OUTBOUND_ALLOW_PRIVATE).
OUTBOUND_ALLOW_PRIVATE = False
# Seconds to wait before each delivery attempt, counted from the previous failure; the first entry is the
# initial send. After the last attempt fails the delivery is marked failed (Standard Webhooks schedule).
WEBHOOK_RETRY_SCHEDULE = env.list(
    "WEBHOOK_RETRY_SCHEDULE", cast=float, default=[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
)
# Random spread (a fraction, ±) on each retry delay, so receivers coming back are not hit all at once.
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.1)
# Retries due within this many seconds are queued with a countdown; later ones are published by the sweeper.
WEBHOOK_COUNTDOWN_MAX_SECONDS = env.float("WEBHOOK_COUNTDOWN_MAX_SECONDS", default=60)
# Socket timeout of each webhook request (connect, and each read).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=15)
# An endpoint that has failed every attempt for this long is disabled and the tenant's admins emailed.
WEBHOOK_DISABLE_AFTER_SECONDS = env.int("WEBHOOK_DISABLE_AFTER_SECONDS", default=5 * 24 * 3600)
# The sweeper re-publishes a due delivery only if its last task was published at least this long ago.
WEBHOOK_REQUEUE_AFTER_SECONDS = env.int("WEBHOOK_REQUEUE_AFTER_SECONDS", default=300)
# The longest wait a receiver's Retry-After (on 429/503) can impose.
WEBHOOK_RETRY_AFTER_MAX_SECONDS = env.int("WEBHOOK_RETRY_AFTER_MAX_SECONDS", default=24 * 3600)
# After a secret rotation the previous secret keeps signing this long unless the request says otherwise.
WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS = env.int("WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS", default=24 * 3600)
# A delivery's `sending` claim lasts this long before another drain may take it over; unset = the task's hard
# time limit + 30 s, which no live worker outlives (shorter only risks a duplicate send, never a lost one).
WEBHOOK_SENDING_LEASE_SECONDS = env.float("WEBHOOK_SENDING_LEASE_SECONDS", default=None)
# Webhook endpoints per tenant schema.
WEBHOOK_MAX_ENDPOINTS = env.int("WEBHOOK_MAX_ENDPOINTS", default=20)
# Deliveries a drain task claims, sends and records at a time.
WEBHOOK_DRAIN_BATCH = env.int("WEBHOOK_DRAIN_BATCH", default=100)
# A drain stops starting new requests after this many seconds (a new drain takes over what is left).
WEBHOOK_DRAIN_SECONDS = env.float("WEBHOOK_DRAIN_SECONDS", default=10)
# Requests in flight at once to one endpoint from one worker process: a slow receiver holds only its own.
WEBHOOK_ENDPOINT_CONCURRENCY = env.int("WEBHOOK_ENDPOINT_CONCURRENCY", default=8)

# --- Logging: one JSON line per event; secrets scrubbed by a filter on every handler ----------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "core.logging.ContextFilter"},
        "redact": {"()": "core.logging.RedactSecretsFilter"},
    },
    "formatters": {"json": {"()": "core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own default config gives "django" a plain console handler and "django.server" one that does
        # not propagate: their lines (a CSRF refusal, runserver's 4xx access line, both naming /r/<token>)
        # would reach the terminal raw. Both go through our JSON formatter and redaction instead.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},  # our request log
        # replaces runserver's access log
        "django.request": {"level": "ERROR"},
        "celery.app.trace": {"level": "WARNING"},  # our task log replaces Celery's "succeeded" line
    },
}
