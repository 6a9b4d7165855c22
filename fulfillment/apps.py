from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "fulfillment"

    def ready(self) -> None:
        from fulfillment import bounces  # noqa: F401 — connects the email provider's bounce signal
        from fulfillment.services import reward_code_void
        from orders.services import code_voider_register

        code_voider_register(reward_code_void)  # orders' cancel asks suppliers through this, not by import
