"""The send-a-reward form: fields shaped by the product (fixed amounts or a range, physical address)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from catalog.models import DenominationType
from core.money import exponent, format_number
from core.zones import zone_label
from orders.addresses import STATE_CHOICES

from .fields import AmountField

DIGITAL_METHODS = [
    ("email", gettext_lazy("Email the gift to the recipient")),
    ("link", gettext_lazy("Claim link sent by email")),
    ("sms", gettext_lazy("Text message (SMS)")),
    ("api", gettext_lazy("No message: we fetch the code through the API")),
]
ADDRESS_FIELDS = [
    "ship_name",
    "ship_line1",
    "ship_line2",
    "ship_city",
    "ship_state",
    "ship_postal_code",
    "ship_country",
]
MAX_RECIPIENTS = 100  # more is a bulk send (CSV)


def parse_recipients(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """`name, email[, phone]` per line -> recipients, and errors naming the line."""
    recipients, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split(",")]
        name = parts[0]
        email = parts[1] if len(parts) > 1 else ""
        phone = parts[2] if len(parts) > 2 else ""
        if len(parts) > 3 or not name:
            errors.append(
                gettext("Line %(number)d: write “name, email” (and optionally “, phone”).") % {"number": number}
            )
            continue
        if email:
            try:
                validate_email(email)
            except forms.ValidationError:
                errors.append(
                    gettext("Line %(number)d: “%(email)s” is not an email address.")
                    % {"number": number, "email": email}
                )
                continue
        recipients.append({"name": name, "email": email, "phone": phone})
    return recipients, errors


class SendRewardForm(forms.Form):
    amount = forms.DecimalField(label=gettext_lazy("Amount"))
    recipients = forms.CharField(
        label=gettext_lazy("Recipients"),
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": gettext_lazy("Ada Lovelace, ada@example.com")}),
        help_text=gettext_lazy("One per line: name, email (and optionally a phone number in +E.164 form for SMS)."),
    )
    message = forms.CharField(
        label=gettext_lazy("Message"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    sender_name = forms.CharField(label=gettext_lazy("Sender name"), required=False, max_length=200)
    delivery_method = forms.ChoiceField(label=gettext_lazy("Delivery method"), choices=DIGITAL_METHODS)
    deliver_at = forms.DateTimeField(
        label=gettext_lazy("Delivery date"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=gettext_lazy("Leave empty to send now."),
    )
    program = forms.ChoiceField(label=gettext_lazy("Program"), required=False)
    funding_currency = forms.ChoiceField(label=gettext_lazy("Pay from"), required=False)
    ship_name = forms.CharField(label=gettext_lazy("Name on the parcel"), required=False, max_length=200)
    ship_line1 = forms.CharField(label=gettext_lazy("Address line 1"), required=False, max_length=200)
    ship_line2 = forms.CharField(label=gettext_lazy("Address line 2"), required=False, max_length=200)
    ship_city = forms.CharField(label=gettext_lazy("City"), required=False, max_length=100)
    ship_state = forms.CharField(label=gettext_lazy("State or region"), required=False, max_length=100)
    ship_postal_code = forms.CharField(label=gettext_lazy("Postal code"), required=False, max_length=20)
    ship_country = forms.ChoiceField(label=gettext_lazy("Country"), required=False)
    shipping_method = forms.ChoiceField(label=gettext_lazy("Shipping method"), required=False)
    idempotency_key = forms.CharField(widget=forms.HiddenInput)
    quote_hash = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, product, programs, currencies, shipping_methods, **kwargs):
        super().__init__(*args, **kwargs)
        self.product = product
        self.is_physical = product.type == "physical"
        self.amount_range: tuple[Decimal, Decimal] | None = None  # a range product's bounds
        # Read in the company's zone (portal.middleware activates it): "09:00" is 9:00 there, DST included.
        zone = zone_label(timezone.get_current_timezone_name())
        self.fields["deliver_at"].help_text = gettext("In %(zone)s. Leave empty to send now.") % {"zone": zone}
        step = Decimal(1).scaleb(-exponent(product.currency))
        if product.denomination_type == DenominationType.FIXED:
            self.fields["amount"] = forms.TypedChoiceField(
                label=gettext("Amount (%(currency)s)") % {"currency": product.currency},
                choices=[
                    (str(value.quantize(step)), f"{value.quantize(step)} {product.currency}")
                    for value in product.denomination_values
                ],
                coerce=Decimal,
            )
        else:
            low, high = product.denomination_min.quantize(step), product.denomination_max.quantize(step)
            self.amount_range = (low, high)
            # Text, not a number input: people type "1,000" (a number input refuses the comma).
            self.fields["amount"] = AmountField(
                currency=product.currency,
                label=gettext("Amount (%(currency)s)") % {"currency": product.currency},
                help_text=gettext("Any amount from %(low)s to %(high)s %(currency)s.")
                % {
                    "low": format_number(low, product.currency),
                    "high": format_number(high, product.currency),
                    "currency": product.currency,
                },
            )
        self.fields["program"].choices = [("", gettext("No program"))] + [(p.slug, p.name) for p in programs]
        self.fields["funding_currency"].choices = [("", gettext("Automatic (the gift's currency if funded)"))] + [
            (c, gettext("%(currency)s balance") % {"currency": c}) for c in currencies
        ]
        if self.is_physical:
            self.fields["delivery_method"].choices = [("shipment", gettext("Shipped to the address below"))]
            self.fields["ship_country"].choices = [(c, c) for c in product.countries]
            # A country with a fixed list of states (Malaysia's 13 states and 3 federal territories) gets that list
            # as a choice, the claim page's list; the order service still checks whatever is posted.
            country = str((self.data.get("ship_country") if self.is_bound else None) or self.initial.get("ship_country")
                          or (product.countries[0] if product.countries else "")).upper()  # fmt: skip
            if country in STATE_CHOICES:
                self.fields["ship_state"].widget = forms.Select(
                    choices=[("", gettext("Choose…"))] + [(name, name) for name in STATE_CHOICES[country]]
                )
            self.fields["shipping_method"].choices = [
                (
                    str(m.id),
                    gettext("%(name)s — %(price)s %(currency)s, about %(days)s days")
                    % {"name": m.name, "price": m.price, "currency": m.currency, "days": m.estimated_days},
                )
                for m in shipping_methods
            ]
        else:
            for name in [*ADDRESS_FIELDS, "shipping_method"]:
                del self.fields[name]

    def clean_amount(self) -> Decimal | None:
        value = self.cleaned_data.get("amount")
        if value is not None and self.amount_range is not None:
            low, high = self.amount_range
            if not low <= value <= high:
                currency = self.product.currency
                raise forms.ValidationError(
                    gettext("Choose an amount from %(low)s to %(high)s %(currency)s.")
                    % {"low": format_number(low, currency), "high": format_number(high, currency), "currency": currency}
                )
        return value

    def clean_recipients(self) -> list[dict[str, str]]:
        recipients, errors = parse_recipients(self.cleaned_data["recipients"])
        if errors:
            raise forms.ValidationError(errors)
        if not recipients:
            raise forms.ValidationError(gettext("Add at least one recipient."))
        if len(recipients) > MAX_RECIPIENTS:
            raise forms.ValidationError(
                gettext("At most %(count)d recipients here; use Bulk for more.") % {"count": MAX_RECIPIENTS}
            )
        return recipients

    def clean_deliver_at(self):
        value = self.cleaned_data.get("deliver_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(gettext("Choose a date and time in the future, or leave it empty to send now."))
        return value

    def address(self) -> dict[str, str] | None:
        if not self.is_physical:
            return None
        return {name.removeprefix("ship_"): self.cleaned_data.get(name) or "" for name in ADDRESS_FIELDS}
