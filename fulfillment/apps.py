from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "fulfillment"

    def ready(self) -> None:
        from fulfillment import bounces  # noqa: F401 — connects the email provider's bounce signal
