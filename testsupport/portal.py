"""Portal users for tests: staff created through the accounts service, and Django clients on a tenant's host."""

from __future__ import annotations

from django.test import Client
from django_tenants.utils import tenant_context

PASSWORD = "correct-horse-battery"


def make_staff(tenant, email: str, role: str = "admin", password: str = PASSWORD):
    from accounts.services import staff_create

    with tenant_context(tenant):
        user, _ = staff_create(email=email, role=role, password=password)
    return user


def host_of(tenant) -> str:
    return f"{tenant.slug}.localhost"


def portal_client(tenant) -> Client:
    return Client(HTTP_HOST=host_of(tenant))


def sign_in(client: Client, email: str, password: str = PASSWORD):
    return client.post("/login/", {"email": email, "password": password})
