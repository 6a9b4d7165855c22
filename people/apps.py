from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "people"

    def ready(self) -> None:
        from audit.models import AuditEvent
        from people.erasure import erasure_fields_register
        from people.models import Activity
        from webhooks.models import Event, WebhookAttempt, WebhookDelivery

        # What erasing a person scrubs in the apps below people (they cannot import people to register it):
        # stored event payloads and what receivers answered, and the audit log's data.
        erasure_fields_register(Event, ("data",))
        erasure_fields_register(WebhookDelivery, ("last_error",))
        erasure_fields_register(WebhookAttempt, ("request_headers", "response_excerpt", "error"))
        erasure_fields_register(AuditEvent, ("data", "object_id"))
        erasure_fields_register(Activity, ("attributes", "response_body"))
