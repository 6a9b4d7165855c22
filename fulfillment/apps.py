from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "fulfillment"

    def ready(self) -> None:
        from fulfillment import bounces  # noqa: F401 — connects the email provider's bounce signal
        from fulfillment.erasure import shipments_scrub
        from fulfillment.models import ShipmentEvent
        from fulfillment.services import reward_code_void
        from fulfillment.shipments import shipment_cancel_with_reward, shipment_new, shipments_copy
        from orders.handoff import ShipmentHooks, code_voider_register, shipment_hooks_register
        from people.erasure import erasure_fields_register, erasure_scrubber_register

        # Orders hands work on through these instead of importing fulfilment (the layers point one way): its
        # cancel asks suppliers to void codes, and its orders write and cancel shipments, in their transaction.
        code_voider_register(reward_code_void)
        shipment_hooks_register(
            ShipmentHooks(new=shipment_new, copy=shipments_copy, cancel=shipment_cancel_with_reward)
        )
        # Erasing a person: the addresses their gifts were shipped to (the country kept), and tracking notes.
        erasure_scrubber_register("fulfillment.shipments", shipments_scrub)
        erasure_fields_register(ShipmentEvent, ("description",))
