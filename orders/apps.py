from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from orders.erasure import rewards_scrub
        from people.erasure import erasure_scrubber_register

        # People sit below orders: erasing a person reaches the copies on their rewards through this hook.
        erasure_scrubber_register("orders.rewards", rewards_scrub)
