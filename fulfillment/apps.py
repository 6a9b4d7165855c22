from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "fulfillment"

    def ready(self) -> None:
        from fulfillment import bounces  # noqa: F401 — connects the email provider's bounce signal
        from fulfillment.erasure import shipments_scrub
        from fulfillment.models import ShipmentEvent
        from fulfillment.services import reward_code_void
        from fulfillment.shipments import shipment_cancel_with_reward, shipment_new, shipments_copy
        from orders.erasure import reward_scrubber_register
        from orders.handoff import ShipmentHooks, code_voider_register, shipment_hooks_register
        from people.erasure import erasure_fields_register

        # Orders hands work on through these instead of importing fulfilment (the layers point one way): its
        # cancel asks suppliers to void codes, and its orders write and cancel shipments, in their transaction.
        code_voider_register(reward_code_void)
        shipment_hooks_register(
            ShipmentHooks(new=shipment_new, copy=shipments_copy, cancel=shipment_cancel_with_reward)
        )
        # Erasing a person or a reward's retention running out: the address it was shipped to (the country kept),
        # with the person's rewards (orders.erasure); tracking notes by the person's strings.
        reward_scrubber_register("fulfillment.shipments", shipments_scrub)
        erasure_fields_register(ShipmentEvent, ("description",))
