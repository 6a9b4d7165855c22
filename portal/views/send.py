"""Send a reward (managers, admins): browse the catalogue, fill the form, preview the email and the cost,
confirm. The order goes through orders.create.order_create with an idempotency key minted per form
render, so a double submit replays the first order instead of sending twice."""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views import View

from catalog.models import ProductType
from catalog.selectors import product_get_for_tenant, product_list_for_tenant, shipping_method_list
from core.csv_export import csv_response
from core.errors import ApplicationError, NotFoundError
from fulfillment.delivery import reward_email_context
from funds.selectors import balance_list
from orders.approvals import approval_required
from orders.create import order_create
from orders.idempotency import request_hash
from orders.models import DeliveryMethod, Order, OrderStatus, OrderType, Reward, RewardStatus
from orders.planning import RewardInput
from orders.quotes import order_quote
from orders.selectors import order_get, order_render
from programs.selectors import program_list

from ..forms_send import SendRewardForm
from ..mixins import PortalMixin, PortalView
from ..permissions import Perm

CATALOGUE_PAGE = 60  # cards on one page of the catalogue
IN_FLIGHT_RETRIES = 40  # x 0.25 s: a double submit waits for the first request's commit, then replays it
SAMPLE_CODE_LAST4 = "0000"
REWARD_KEY_RE = re.compile(r"^rewards\[(\d+)\]\.(.+)$")
# Where a service error keyed by the API's field path shows on this form.
FIELD_FOR_ERROR = {
    "amount": "amount",
    "delivery_method": "delivery_method",
    "deliver_at": "deliver_at",
    "shipping_method_id": "shipping_method",
    "currency": "amount",
    "rewards": "recipients",
    "program": "program",
}
FIELD_FOR_CODE = {"budget_exceeded": "program", "not_found": "program"}


class CatalogueView(PortalView):
    """GET /send/: brand cards, filtered by country, currency, type and a search term."""

    permission = Perm.SEND
    nav_section = "send"
    page_title = gettext_lazy("Send a reward")
    template_name = "portal/send/catalogue.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        filters = {name: params.get(name, "").strip() for name in ("q", "country", "currency", "type")}
        if filters["type"] not in ProductType.values:
            filters["type"] = ""
        options = product_list_for_tenant().prefetch_related(None).values_list("currency", "countries")
        currencies, countries = set(), set()
        for currency, product_countries in options:
            currencies.add(currency)
            countries.update(product_countries)
        matching = product_list_for_tenant(**{k: v or None for k, v in filters.items()})
        page = Paginator(matching, CATALOGUE_PAGE).get_page(params.get("page"))
        context.update(
            filters=filters,
            filter_query=urlencode({k: v for k, v in filters.items() if v}),
            currencies=sorted(currencies),
            countries=sorted(countries),
            types=ProductType.choices,
            products=[{"product": p} for p in page.object_list],
            page=page,
        )
        return context


CATALOGUE_HEADER = ["sku", "product_id", "brand", "name", "type", "currency", "countries", "amounts"]


class CatalogueExportView(PortalMixin, View):
    """The catalogue this tenant may order from, filtered as on the page, as CSV: SKUs for bulk files."""

    permission = Perm.SEND

    def get(self, request):
        params = request.GET
        filters = {name: params.get(name, "").strip() or None for name in ("q", "country", "currency", "type")}
        if filters["type"] not in ProductType.values:
            filters["type"] = None
        rows = (
            [p.sku, p.id, p.brand.name, p.name, p.type, p.currency, " ".join(p.countries), p.allowed_amounts_text()]
            for p in product_list_for_tenant(**filters)
        )
        return csv_response(filename="catalogue.csv", header=CATALOGUE_HEADER, rows=rows, streaming=False)


class SendRewardView(PortalView):
    """GET/POST /send/<product_id>/: the form; `action=preview` prices it, `action=send` places the order."""

    permission = Perm.SEND
    nav_section = "send"
    page_title = gettext_lazy("Send a reward")
    template_name = "portal/send/form.html"

    def get(self, request, product_id):
        product = self._product(product_id)
        form = self._form(product, None)
        return self.render_to_response(self.get_context_data(product=product, form=form))

    def post(self, request, product_id):
        product = self._product(product_id)
        form = self._form(product, request.POST)
        quote = preview_html = None
        needs_approval = False
        if form.is_valid():
            order_type, rewards, payload = self._order_inputs(form, product)
            payload_hash = request_hash(payload)
            wants_send = request.POST.get("action") == "send"
            try:
                if wants_send and form.cleaned_data["quote_hash"] == payload_hash:
                    return self._send(form, order_type, rewards, payload, payload_hash)
                if wants_send:
                    messages.warning(
                        request, gettext("The details changed since the preview: check the cost, then confirm.")
                    )
                quote = order_quote(
                    order_type=order_type,
                    rewards=rewards,
                    program_slug=form.cleaned_data["program"] or None,
                    funding_currency=form.cleaned_data["funding_currency"] or None,
                )
            except ApplicationError as exc:
                self._show_errors(form, exc)
            else:
                # Said before the money moves: the same policy order_create applies to this total and role.
                needs_approval = quote.total > 0 and (
                    approval_required(totals={quote.currency: quote.total}, created_by_role=request.user.role)
                    is not None
                )
                preview_html = self._email_preview(form, product, order_type)
                form.data = form.data.copy()
                form.data["quote_hash"] = payload_hash
        self._new_render_key(form)
        context = self.get_context_data(
            product=product, form=form, quote=quote, preview_html=preview_html, needs_approval=needs_approval
        )
        return self.render_to_response(context, status=200 if form.is_valid() else 422)

    def _send(self, form, order_type, rewards, payload, payload_hash):
        data = form.cleaned_data
        key = f"portal:{data['idempotency_key']}"
        for _ in range(IN_FLIGHT_RETRIES):
            try:
                _, body, replayed = order_create(
                    order_type=order_type,
                    rewards=rewards,
                    idempotency_key=key,
                    body_hash=payload_hash,
                    render=lambda order: order_render(order_get(order_id=order.id)),
                    program_slug=data["program"] or None,
                    funding_currency=data["funding_currency"] or None,
                    created_by_email=self.request.user.email,
                    created_by_role=self.request.user.role,
                )
                break
            except ApplicationError as exc:
                if exc.code != "idempotency_key_in_flight":
                    raise
                time.sleep(0.25)
        else:
            raise ApplicationError("This reward is still being sent; refresh in a moment.", code="in_flight")
        if not replayed:
            self.audit(
                "order.create",
                object_type="order",
                object_id=body["id"],
                data={"rewards": len(body["rewards"]), "total": body["total"]["amount"],
                      "currency": body["total"]["currency"], "product_id": payload["product_id"]},
            )  # fmt: skip
            count = len(body["rewards"])
            if body["status"] == "pending_approval":
                messages.success(self.request, gettext("Funds held. This send waits for approval by someone else."))
            else:
                messages.success(
                    self.request,
                    ngettext("%(count)s reward on the way.", "%(count)s rewards on the way.", count) % {"count": count},
                )
        return redirect("portal:send_done", order_id=body["id"])

    def _product(self, product_id):
        try:
            return product_get_for_tenant(product_id=product_id)
        except NotFoundError:
            raise Http404("No such product") from None

    def _form(self, product, data) -> SendRewardForm:
        shipping = []
        if product.type == "physical":
            shipping = [m for m in shipping_method_list() if set(m.countries) & set(product.countries)]
        self._programs = list(program_list(is_active=True).order_by("name"))
        form = SendRewardForm(
            data,
            initial={
                "idempotency_key": uuid.uuid4().hex,
                "delivery_method": "shipment" if product.type == "physical" else DeliveryMethod.EMAIL,
            },
            product=product,
            programs=self._programs,
            currencies=[b.currency for b in balance_list()],
            shipping_methods=shipping,
        )
        return form

    @staticmethod
    def _new_render_key(form) -> None:
        """Every rendering of the form carries a fresh key: one render, one order, however often it is posted."""
        if form.is_bound:
            form.data = form.data.copy()
            form.data["idempotency_key"] = uuid.uuid4().hex

    @staticmethod
    def _order_inputs(form, product) -> tuple[str, list[RewardInput], dict]:
        data = form.cleaned_data
        method = data["delivery_method"]
        if product.type == "physical":
            order_type = OrderType.PHYSICAL
        else:
            order_type = OrderType.LINK if method == DeliveryMethod.LINK else OrderType.DIGITAL
            if method == DeliveryMethod.LINK:
                method = (
                    DeliveryMethod.LINK if not any(r["email"] for r in data["recipients"]) else DeliveryMethod.EMAIL
                )
        address = form.address()
        rewards = [
            RewardInput(
                product_id=str(product.id),
                amount=data["amount"],
                currency=product.currency,
                delivery_method=method,
                recipient=recipient,
                message=data["message"],
                sender_name=data["sender_name"],
                deliver_at=data["deliver_at"],
                shipping_address=address,
                shipping_method_id=data.get("shipping_method") or None,
            )
            for recipient in data["recipients"]
        ]
        payload = {
            "type": order_type,
            "product_id": str(product.id),
            "amount": str(data["amount"]),
            "delivery_method": method,
            "recipients": data["recipients"],
            "message": data["message"],
            "sender_name": data["sender_name"],
            "deliver_at": data["deliver_at"].isoformat() if data["deliver_at"] else None,
            "program": data["program"],
            "funding_currency": data["funding_currency"],
            "shipping_address": address,
            "shipping_method_id": data.get("shipping_method") or None,
        }
        return order_type, rewards, payload

    @staticmethod
    def _show_errors(form, exc: ApplicationError) -> None:
        """Each service error next to the field it is about; the rest above the form."""
        recipients = form.cleaned_data.get("recipients") or []
        if not exc.errors:
            form.add_error(FIELD_FOR_CODE.get(exc.code), exc.detail)
            return
        for key, problems in exc.errors.items():
            match = REWARD_KEY_RE.match(key)
            index, path = (int(match[1]), match[2]) if match else (None, key)
            prefix = ""
            field: str | None
            if path.startswith("recipient."):
                field = "recipients"
                if index is not None and index < len(recipients):
                    prefix = f"Recipient {index + 1} ({recipients[index]['name']}): "
            elif path.startswith("shipping_address."):
                field = "ship_" + path.split(".", 1)[1]
            else:
                field = FIELD_FOR_ERROR.get(path)
            if field not in form.fields:
                field = None
            for problem in problems if isinstance(problems, list) else [problems]:
                form.add_error(field, f"{prefix}{problem}")

    def _email_preview(self, form, product, order_type) -> str:
        """The real reward email template, rendered for an unsaved sample reward with a sample code."""
        data = form.cleaned_data
        program = next((p for p in self._programs if p.slug == data["program"]), None)
        sample = Reward(
            order=Order(type=order_type, program=program),
            product_snapshot={"brand": product.brand.name, "name": product.name, "type": product.type},
            amount=Decimal(data["amount"]),
            currency=product.currency,
            message=data["message"],
            sender_name=data["sender_name"],
            code_last4=SAMPLE_CODE_LAST4,
        )
        context = reward_email_context(sample, preview=True)
        if order_type == OrderType.LINK:
            context["claim_url"] = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/r/sample-link"
        return render_to_string("emails/reward.html", context)


class SendDoneView(PortalView):
    """GET /send/orders/<order_id>/: what was sent and where each reward stands (the page polls until done)."""

    permission = Perm.SEND
    nav_section = "send"
    page_title = gettext_lazy("Reward sent")
    template_name = "portal/send/done.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            order = order_get(order_id=kwargs["order_id"])
        except NotFoundError:
            raise Http404("No such order") from None
        body = order_render(order)
        try:
            order_url = reverse("portal:order", kwargs={"order_id": order.id})
        except NoReverseMatch:
            order_url = reverse("portal:orders")
        in_flight = {"pending", "scheduled", "processing"}
        # The API body carries status codes ("pending_approval"); the page shows their translated labels.
        body["status_label"] = OrderStatus(body["status"]).label
        for reward in body["rewards"]:
            reward["status_label"] = RewardStatus(reward["status"]).label
        if body["status"] == OrderStatus.PENDING_APPROVAL:
            context["page_title"] = gettext("Waiting for approval")
        context.update(
            order=body,
            order_url=order_url,
            polling=any(r["status"] in in_flight and not r["deliver_at"] for r in body["rewards"]),
        )
        return context
