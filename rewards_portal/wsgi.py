"""WSGI entry point (gunicorn rewards_portal.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.production")
application = get_wsgi_application()
