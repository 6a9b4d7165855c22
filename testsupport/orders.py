"""Order request bodies for tests, as a client would send them to POST /api/v1/orders."""

from __future__ import annotations


def digital_order(product, amount="25.00", **overrides):
    body = {
        "type": "digital",
        "rewards": [
            {
                "product_id": str(product.id),
                "amount": amount,
                "currency": product.currency,
                "delivery_method": "email",
                "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
                "message": "Thank you!",
            }
        ],
    }
    body.update(overrides)
    return body


US_ADDRESS = {
    "name": "Grace Hopper",
    "line1": "1 Navy Way",
    "city": "Arlington",
    "state": "VA",
    "postal_code": "22202",
    "country": "US",
}


def physical_order(product, shipping_method, amount="50.00", **overrides):
    """One physical reward to Grace Hopper at US_ADDRESS, shipped by `shipping_method`."""
    body = {
        "type": "physical",
        "rewards": [
            {
                "product_id": str(product.id),
                "amount": amount,
                "currency": product.currency,
                "recipient": {"name": "Grace Hopper", "email": "grace@example.com"},
                "shipping_address": US_ADDRESS,
                "shipping_method_id": str(shipping_method.id),
            }
        ],
    }
    body.update(overrides)
    return body


def link_order(product, amount="25.00", **reward_overrides):
    """One claim-link reward for Ada Lovelace (emailed), as a `link` order; reward fields may be overridden."""
    reward = {
        "product_id": str(product.id),
        "amount": amount,
        "currency": product.currency,
        "delivery_method": "email",
        "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "sender_name": "Acme People Team",
    }
    reward.update(reward_overrides)
    return {"type": "link", "rewards": [reward]}
