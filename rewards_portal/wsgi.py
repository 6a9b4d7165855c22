"""WSGI entry point (gunicorn rewards_portal.wsgi).

Loading it also does the first request's one-time work (rewards_portal.warmup): each gunicorn worker loads this
module before it serves a request, so no client waits behind the imports.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.production")
application = get_wsgi_application()

from rewards_portal.warmup import warm_up  # noqa: E402 — needs Django set up

warm_up()
