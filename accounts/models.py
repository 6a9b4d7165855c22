"""People who sign in: operators in the public schema, a tenant's staff in its schema (same table shape)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")  # everything
    MANAGER = "manager", _("Manager")  # send, bulk, reports
    FINANCE = "finance", _("Finance")  # funds, reports
    VIEWER = "viewer", _("Viewer")  # read only


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        # This is User's manager; BaseUserManager is generic over the model only in django-stubs, not at runtime.
        user = cast("User", self.model(email=self.normalize_email(email).lower(), **fields))
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.update(is_staff=True, is_superuser=True, role=Role.ADMIN)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Operator: may use the Django admin.")
    date_joined = models.DateTimeField(default=timezone.now)
    # Optional TOTP two-factor sign-in (portal): the shared secret, Fernet-encrypted with core.crypto; blank = off.
    totp_secret_encrypted = models.TextField(blank=True, default="")
    totp_enabled_at = models.DateTimeField(null=True, blank=True)
    # The last accepted TOTP time step: a code is accepted once, never replayed within its window.
    totp_last_step = models.BigIntegerField(null=True, blank=True)
    # The portal's language for this person (`en`, `ms`); '' = the tenant's default, else the browser's.
    language = models.CharField(max_length=16, blank=True, default="")

    objects = UserManager()
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    def __str__(self) -> str:
        return self.email

    @property
    def totp_enabled(self) -> bool:
        return bool(self.totp_secret_encrypted)


class RecoveryCode(models.Model):
    """A one-time recovery code for two-factor sign-in: only its keyed hash is stored; used once, then spent.

    A new set replaces the old one (accounts.services.recovery_codes_generate); the codes are shown once.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_user_hash")]

    def __str__(self) -> str:
        return f"recovery code of {self.user_id}"
