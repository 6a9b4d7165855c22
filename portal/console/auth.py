"""Operator console sign-in and sign-out (public host; failed attempts throttled like the portal's)."""

from __future__ import annotations

import math

from django.contrib.auth import authenticate, login, logout
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from tenants.middleware import client_ip

from ..forms import LoginForm
from ..throttle import login_failure_record, login_retry_after
from .base import public_host_only

AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"
THROTTLE_SCOPE = "console"


@public_host_only
def login_view(request):
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    next_url = next_url or reverse("console:tenants")
    if request.method == "GET":
        if request.user.is_authenticated and request.user.is_staff:
            return redirect(next_url)
        form = LoginForm()
    elif request.method == "POST":
        form = LoginForm(request.POST)
        if form.is_valid():
            email = form.cleaned_data["email"].strip().lower()
            ip = client_ip(request)
            retry_after = login_retry_after(tenant_schema=THROTTLE_SCOPE, email=email, ip=ip)
            if retry_after:
                response = render(
                    request,
                    "console/login.html",
                    {
                        "form": form,
                        "next": next_url,
                        "page_title": "Too many attempts",
                        "throttled_minutes": max(1, math.ceil(retry_after / 60)),
                    },
                    status=429,
                )
                response["Retry-After"] = str(retry_after)
                return response
            user = authenticate(request, username=email, password=form.cleaned_data["password"])
            if user is None or not user.is_staff:
                login_failure_record(tenant_schema=THROTTLE_SCOPE, email=email, ip=ip)
                form.add_error(None, "That email and password don't match an operator account.")
            else:
                login(request, user, backend=AUTH_BACKEND)
                return redirect(next_url)
    else:
        return HttpResponseNotAllowed(["GET", "POST"])
    return render(request, "console/login.html", {"form": form, "next": next_url, "page_title": "Operator sign-in"})


@public_host_only
@require_POST
def logout_view(request):
    logout(request)
    return redirect("console:login")
