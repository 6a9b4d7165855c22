"""Writes for people: a tenant's staff users (in the tenant's schema)."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from core.errors import ApplicationError

from .models import Role, User


def staff_create(*, email: str, role: str, password: str | None = None, name: str = "") -> tuple[User, str]:
    """Create a portal user in the current tenant schema; returns the user and the (possibly generated) password."""
    email = email.strip().lower()
    errors: dict[str, list[str]] = {}
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = [f"{email!r} is not a valid email address."]
    if role not in Role.values:
        errors["role"] = [f"Role must be one of {', '.join(Role.values)}."]
    if password is not None and len(password) < 10:
        errors["password"] = ["Use at least 10 characters."]
    if not errors and User.objects.filter(email=email).exists():
        errors["email"] = [f"{email} already has an account here."]
    if errors:
        raise ApplicationError(
            "; ".join(m for ms in errors.values() for m in ms), code="validation_error", errors=errors
        )
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_user(email, password, role=role, name=name)
    return user, password
