"""Find: one box for any reward, order or batch of the schema in use, by part of a name or email, a reference
(RW-7K3Q-92), an external id, a PO number, a metadata value or an id (orders.search)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from batches.models import Batch
from core.db import custom_plans
from core.errors import ApplicationError
from orders.search import MIN_TERM_CHARS, order_search, search_describe
from orders.selectors import order_list, reward_list

from ..mixins import PortalView
from ..permissions import Perm

REWARDS_SHOWN = 50
ORDERS_SHOWN = 20


class SearchForm(forms.Form):
    q = forms.CharField(
        min_length=MIN_TERM_CHARS,
        max_length=200,
        label=_("Find"),
        help_text=_("Name, email, reference, external id, PO or id"),
    )


class SearchView(PortalView):
    permission = Perm.VIEW
    nav_section = "search"
    page_title = _("Find")
    template_name = "portal/search.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = SearchForm(self.request.GET or None)
        context.update(form=form, searched=False, how=search_describe())
        if not form.is_valid():
            return context
        q = form.cleaned_data["q"]
        try:
            with custom_plans():  # planned for these words every time: a generic plan walked every order
                rewards = list(reward_list(q=q).order_by("-created_at", "-id")[: REWARDS_SHOWN + 1])
                # The orders of the rewards just found, plus exact order references: the search index read once.
                orders = list(
                    order_search(order_list(), q, reward_orders=[reward.order_id for reward in rewards]).order_by(
                        "-created_at", "-id"
                    )[: ORDERS_SHOWN + 1]
                )
        except ApplicationError as exc:
            form.add_error("q", exc.detail)
            return context
        batches = list(Batch.objects.filter(name__icontains=q).order_by("-created_at")[:10]) if len(q) >= 3 else []
        context.update(
            searched=True,
            q=q,
            rewards=rewards[:REWARDS_SHOWN],
            rewards_more=len(rewards) > REWARDS_SHOWN,
            orders=orders[:ORDERS_SHOWN],
            orders_more=len(orders) > ORDERS_SHOWN,
            batches=batches,
        )
        return context
