"""The audit log of a tenant schema: who did what to which object, from where (staff in the portal, API keys)."""

from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One staff action or API write. Append-only; `data` never holds secrets, codes or tokens."""

    actor = models.CharField(max_length=200)  # audit.actors.Actor.label: "staff:a@example.com", "cli:deploy", ...
    action = models.CharField(max_length=120)  # "team.invite", "POST /api/v1/orders"
    object_type = models.CharField(max_length=60, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    ip = models.CharField(max_length=45, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["actor", "-created_at"], name="audit_actor_created"),
            models.Index(fields=["action", "-created_at"], name="audit_action_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type}:{self.object_id}"
