from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from orders.erasure import rewards_export, rewards_scrub
        from orders.models import IdempotencyRecord, Order, Reward, RewardEvent
        from people.erasure import erasure_fields_register, erasure_scrubber_register
        from people.export import export_section_register

        # People sit below orders: erasing a person reaches the copies on their rewards through these hooks.
        erasure_scrubber_register("orders.rewards", rewards_scrub)
        export_section_register("rewards", rewards_export)
        erasure_fields_register(IdempotencyRecord, ("response_body",))  # a replayed reply names the recipient
        erasure_fields_register(RewardEvent, ("note",))
        # The client's own labels may quote a person (an employee number, a name): searched and exported, so
        # scrubbed with the rest.
        erasure_fields_register(Reward, ("metadata", "external_id"))
        erasure_fields_register(Order, ("metadata",))
