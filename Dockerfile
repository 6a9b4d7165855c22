# The production image: one image for the web (gunicorn), the Celery worker and beat, and the migrate job.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=rewards_portal.settings.production

RUN useradd --create-home --uid 10001 app
WORKDIR /app

# Dependencies first, so code changes do not reinstall them. requirements.txt has binary wheels only
# (no compiler needed); the embedded dev servers live in requirements-embedded.txt and stay out of the image.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# The translations (.po to .mo, with Babel): the image's code is read-only to the app user.
RUN python scripts/messages.py compile --force
# Static files are collected at build time (WhiteNoise serves them from gunicorn). Production settings refuse
# to load without their variables, so this one command gets throwaway values; nothing connects to them.
RUN SECRET_KEY=collectstatic-only \
    DATABASE_URL=postgresql://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    ALLOWED_HOSTS=localhost \
    ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXJlYWwta3k= \
    python manage.py collectstatic --noinput -v0 \
 && mkdir -p /app/var && chown app:app /app/var

USER app
EXPOSE 8000
# Workers: WEB_CONCURRENCY (gunicorn reads it; default 1). Heartbeat files in /dev/shm, not the overlay fs.
CMD ["gunicorn", "rewards_portal.wsgi", "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/dev/shm"]
