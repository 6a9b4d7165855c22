from django.apps import AppConfig


class PointsConfig(AppConfig):
    name = "points"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Earning rules react to the activities the people app records (people.reactions): registered here,
        # since people sits below points and must not import it.
        from points import earning

        earning.register()
        # Awards from a CSV run on the bulk machinery (batches.kinds), which must not import points either.
        from points import bulk_csv

        bulk_csv.register()
        # A redemption's reward that fails or is canceled gives its points back (orders.handoff).
        from orders.handoff import reward_funds_returned_register
        from points.redemptions import redemption_refund

        reward_funds_returned_register(redemption_refund)
        # Automations whose reward is points (automations sits below points) award through this.
        from automations.handoff import points_awarder_register
        from points.services import automation_points_award

        points_awarder_register(automation_points_award)
        # A person's export has their points; erasing them scrubs awards' reasons that may quote them.
        from people.erasure import erasure_fields_register
        from people.export import export_section_register
        from points.models import PointsTransaction
        from points.privacy import points_export

        export_section_register("points", points_export)
        erasure_fields_register(PointsTransaction, ("reason",))
