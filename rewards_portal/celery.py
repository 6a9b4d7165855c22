"""The Celery app: tenant-aware (a task sent inside a tenant runs in that tenant's schema)."""

import os

from kombu import Queue
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.dev")

app = CeleryApp("rewards_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Separate queues so a flood of bulk work never delays deliveries or webhooks.
QUEUES = ("default", "delivery", "webhooks", "bulk")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.autodiscover_tasks()
