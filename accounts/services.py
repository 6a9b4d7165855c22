"""Writes for people: a tenant's staff users (in the tenant's schema), their team changes and two-factor.

Every change to who may sign in, with what role and which factors records an audit row in the same
transaction: `actor` where the caller may be anyone (the CLI, the portal), the acting user where only a
signed-in staff member can act (team management, their own two-factor and password).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

import pyotp
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from audit.actors import Actor
from audit.services import audit_action
from core import crypto, i18n
from core.db import connection
from core.errors import ApplicationError
from core.i18n import locale_choose, locale_normalize, supported_locales
from tenants.selectors import tenant_current

from .models import RecoveryCode, Role, User

logger = logging.getLogger(__name__)


def staff_create(
    *, email: str, role: str, password: str | None = None, name: str = "", actor: Actor | None = None
) -> tuple[User, str]:
    """Create a portal user in the current tenant schema; returns the user and the (possibly generated) password.

    Audited as `team.create`.
    """
    with transaction.atomic():
        user, password = _staff_new(email=email, role=role, password=password, name=name)
        audit_action(
            actor=actor, action="team.create", object_type="user", object_id=user.pk,
            data={"email": user.email, "role": user.role},
        )  # fmt: skip
    return user, password


def _staff_new(*, email: str, role: str, password: str | None = None, name: str = "") -> tuple[User, str]:
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


# --- Team management (portal, admins only) ------------------------------------------------------------


def _actor(user: User, ip: str) -> Actor:
    return Actor.staff(user.email, ip=ip)


def _audit_own(user: User, action: str, *, ip: str, data: dict[str, object] | None = None) -> None:
    """A person's change to their own sign-in (password, factors): the tenant's audit log for staff; for an
    operator (the public schema has no audit log) a structured log line, which the operator's log keeps."""
    if connection.schema_name == get_public_schema_name():
        logger.info(
            action, extra={"event": action, "actor": Actor.operator(user.email).label, "ip": ip, **(data or {})}
        )
        return
    audit_action(actor=_actor(user, ip), action=action, object_type="user", object_id=user.pk, data=data)


def _active_admins_other_than(user: User) -> int:
    return User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=user.pk).count()


def staff_invite(
    *, acting_user: User, email: str, role: str, name: str = "", set_password_url: Callable[[User], str], ip: str = ""
) -> User:
    """Create a staff user without a usable password and email them a link to set one (after commit).

    `set_password_url(user)` builds the absolute link on the tenant's portal host (the view knows the host).
    """
    with transaction.atomic():
        user, _ = _staff_new(email=email, role=role, name=name)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        audit_action(
            actor=_actor(acting_user, ip), action="team.invite", object_type="user", object_id=user.pk,
            data={"email": user.email, "role": role},
        )  # fmt: skip
        link = set_password_url(user)
        tenant_name = tenant_current().name
        language = staff_email_language(user)
        transaction.on_commit(
            lambda: _send_invitation(
                user=user, inviter=acting_user, link=link, tenant_name=tenant_name, language=language
            )
        )
    return user


INVITATION_RESENDS_PER_DAY = 3  # per invited person: enough for a lost email, too few to spam anyone with


def staff_invitation_resend(
    *, acting_user: User, user: User, set_password_url: Callable[[User], str], ip: str = ""
) -> User:
    """Email a fresh set-password link to someone invited who has not chosen a password yet (after commit).

    Refused for anyone who already signed up (409 `invitation_accepted`) or is deactivated, and beyond
    INVITATION_RESENDS_PER_DAY per person (429 `rate_limited`). Audited as `team.invite_resend`.
    """
    from core import ratelimit

    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.has_usable_password() or not user.is_active:
            raise ApplicationError(
                f"{user.email} has already accepted the invitation, or is deactivated.",
                code="invitation_accepted",
                status=409,
            )
        allowed, retry_after = ratelimit.hit(
            f"invite-resend:{connection.schema_name}:{user.pk}", limit=INVITATION_RESENDS_PER_DAY, window=86400
        )
        if not allowed:
            raise ApplicationError(
                f"The invitation to {user.email} was sent {INVITATION_RESENDS_PER_DAY} times today; try tomorrow.",
                code="rate_limited",
                status=429,
                retryable=True,
                headers={"Retry-After": str(retry_after)},
            )
        audit_action(
            actor=_actor(acting_user, ip), action="team.invite_resend", object_type="user", object_id=user.pk,
            data={"email": user.email},
        )  # fmt: skip
        link = set_password_url(user)
        tenant_name = tenant_current().name
        language = staff_email_language(user)
        transaction.on_commit(
            lambda: _send_invitation(
                user=user, inviter=acting_user, link=link, tenant_name=tenant_name, language=language
            )
        )
    return user


def staff_email_language(user: User) -> str:
    """The language of an email to a staff member: theirs (profile), else their company's default (an invitee has
    chosen none yet), else the platform's."""
    return locale_choose(user.language, tenant_current().default_locale) or settings.LANGUAGE_CODE


def staff_email_languages(emails: list[str], *, default: str) -> dict[str, list[str]]:
    """`emails` grouped by the language to write to each in: a staff member's of this schema reads their own
    (profile), anyone else (a finance mailbox on the low-balance list) `default` (the company's)."""
    chosen = dict(User.objects.filter(email__in=[email.lower() for email in emails]).values_list("email", "language"))
    groups: dict[str, list[str]] = {}
    for email in emails:
        language = locale_choose(chosen.get(email.lower(), ""), default) or settings.LANGUAGE_CODE
        groups.setdefault(language, []).append(email)
    return groups


def staff_email_send(
    *, user: User, template: str, context: dict[str, object], language: str, connection: Any = None
) -> None:
    """Send `template` (…_subject.txt, ….txt, ….html under templates/) to a staff member, rendered in `language`
    (through `connection` when the caller sends several)."""
    with i18n.language(language):
        subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
        message = EmailMultiAlternatives(
            subject=subject, body=render_to_string(f"{template}.txt", context), to=[user.email], connection=connection
        )
        message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    message.send()


def _send_invitation(*, user: User, inviter: User, link: str, tenant_name: str, language: str) -> None:
    context = {"user": user, "inviter": inviter, "link": link, "tenant_name": tenant_name}
    staff_email_send(user=user, template="portal/emails/invitation", context=context, language=language)


def staff_set_role(*, acting_user: User, user: User, role: str, ip: str = "") -> User:
    if role not in Role.values:
        raise ApplicationError(f"Role must be one of {', '.join(Role.values)}.", code="validation_error")
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.role == role:
            return user
        if user.role == Role.ADMIN and _active_admins_other_than(user) == 0:
            raise ApplicationError("Keep at least one active admin: promote someone else first.", code="last_admin")
        previous = user.role
        user.role = role
        user.save(update_fields=["role"])
        audit_action(
            actor=_actor(acting_user, ip), action="team.role_change", object_type="user", object_id=user.pk,
            data={"email": user.email, "from": previous, "to": role},
        )  # fmt: skip
    return user


def staff_set_active(*, acting_user: User, user: User, active: bool, ip: str = "") -> User:
    """Deactivate (signed out at their next request: inactive users never authenticate) or reactivate."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_active == active:
            return user
        if not active and user.pk == acting_user.pk:
            raise ApplicationError("You cannot deactivate yourself.", code="cannot_deactivate_self")
        if not active and user.role == Role.ADMIN and _active_admins_other_than(user) == 0:
            raise ApplicationError("Keep at least one active admin.", code="last_admin")
        user.is_active = active
        user.save(update_fields=["is_active"])
        audit_action(
            actor=_actor(acting_user, ip), action="team.reactivate" if active else "team.deactivate",
            object_type="user", object_id=user.pk, data={"email": user.email},
        )  # fmt: skip
    return user


def staff_two_factor_reset(*, acting_user: User, user: User, ip: str = "") -> User:
    """An admin clears a colleague's lost second factor (phone and recovery codes gone): they sign in with their
    password and enrol again (at once, where the tenant requires two-factor). Never one's own (that needs a
    code, `totp_disable`). Audited as `team.two_factor_reset`."""
    if user.pk == acting_user.pk:
        raise ApplicationError(
            "Turn your own two-factor off from your account page (it asks for a code).", code="cannot_reset_self"
        )
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if not user.totp_enabled:
            return user
        user.totp_secret_encrypted = ""
        user.totp_enabled_at = None
        user.totp_last_step = None
        user.save(update_fields=["totp_secret_encrypted", "totp_enabled_at", "totp_last_step"])
        RecoveryCode.objects.filter(user=user).delete()
        audit_action(
            actor=_actor(acting_user, ip), action="team.two_factor_reset", object_type="user", object_id=user.pk,
            data={"email": user.email},
        )  # fmt: skip
    return user


def password_set(*, user: User, password: str, ip: str = "") -> User:
    """The user's new password (already validated by the form that asked for it), audited as theirs."""
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_action(actor=_actor(user, ip), action="auth.password_set", object_type="user", object_id=user.pk)
    return user


# --- TOTP two-factor ----------------------------------------------------------------------------------
TOTP_ISSUER = "Rewards Portal"
TOTP_VALID_WINDOW = 1  # steps either side of now (30 s each): tolerates small clock drift


def totp_secret_new() -> str:
    return pyotp.random_base32()


def totp_provisioning_uri(*, user: User, secret: str, tenant_name: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=f"{user.email} ({tenant_name})", issuer_name=TOTP_ISSUER)


def _matching_step(secret: str, code: str, *, after: int | None) -> int | None:
    """The time step whose code equals `code` (within the window, later than `after`), else None."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(timezone.now())
    for step in range(now_step - TOTP_VALID_WINDOW, now_step + TOTP_VALID_WINDOW + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def totp_enable(*, user: User, secret: str, code: str, ip: str = "") -> User:
    """Turn two-factor on once the user proves their authenticator holds `secret`."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        step = _matching_step(secret, code, after=None)
        if step is None:
            raise ApplicationError(
                "That code is not valid. Check the time on your phone and try the current code.",
                code="invalid_code", errors={"code": ["That code is not valid."]},
            )  # fmt: skip
        user.totp_secret_encrypted = crypto.encrypt(secret)
        user.totp_enabled_at = timezone.now()
        user.totp_last_step = step
        user.save(update_fields=["totp_secret_encrypted", "totp_enabled_at", "totp_last_step"])
        _audit_own(user, "auth.totp_enable", ip=ip)
    return user


def totp_verify(*, user: User, code: str) -> bool:
    """Whether `code` is a current code of the user's authenticator; each code is accepted once."""
    if not user.totp_enabled:
        return False
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        step = _matching_step(crypto.decrypt(locked.totp_secret_encrypted), code, after=locked.totp_last_step)
        if step is None:
            return False
        locked.totp_last_step = step
        locked.save(update_fields=["totp_last_step"])
    return True


# --- Recovery codes -----------------------------------------------------------------------------------
RECOVERY_CODE_COUNT = 10
# 10 characters of a 31-letter alphabet (no 0/O, 1/I/L): ~50 bits each, so a keyed SHA-256 is enough (a slow
# password hash would cost seconds for ten codes and guarding ~50 bits behind the sign-in throttle needs none).
RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RECOVERY_CODE_LENGTH = 10


def _recovery_hash(code: str) -> str:
    from django.conf import settings

    normalized = "".join(ch for ch in code.upper() if ch.isalnum())
    return hmac.new(settings.SECRET_KEY.encode(), f"recovery:{normalized}".encode(), "sha256").hexdigest()


def recovery_codes_generate(*, user: User, ip: str = "") -> list[str]:
    """A new set of one-time recovery codes for `user` (the old set stops working). Returns the codes, which are
    shown once and stored only hashed. Audited as `auth.recovery_codes_generate`."""
    codes = [
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    shown = [f"{code[:5]}-{code[5:]}" for code in codes]
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        RecoveryCode.objects.filter(user=user).delete()
        RecoveryCode.objects.bulk_create([RecoveryCode(user=user, code_hash=_recovery_hash(code)) for code in codes])
        _audit_own(user, "auth.recovery_codes_generate", ip=ip, data={"count": len(codes)})
    return shown


def recovery_codes_left(*, user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def recovery_code_use(*, user: User, code: str, ip: str = "") -> bool:
    """Spend one unused recovery code of `user`; False when it is unknown or already used. Audited when used."""
    with transaction.atomic():
        spent = RecoveryCode.objects.filter(user=user, code_hash=_recovery_hash(code), used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if spent:
            _audit_own(user, "auth.recovery_code_used", ip=ip, data={"left": recovery_codes_left(user=user)})
    return bool(spent)


def second_factor_verify(*, user: User, code: str, ip: str = "") -> bool:
    """A sign-in's second step: a current authenticator code (6 digits), or one unused recovery code."""
    compact = "".join(code.split())
    if compact.isdigit() and len(compact) == 6:
        return totp_verify(user=user, code=compact)
    if not user.totp_enabled or not 8 <= len(compact) <= 16:
        return False
    return recovery_code_use(user=user, code=compact, ip=ip)


def totp_disable(*, user: User, code: str, ip: str = "") -> User:
    if not totp_verify(user=user, code=code):
        raise ApplicationError(
            "That code is not valid.", code="invalid_code", errors={"code": ["That code is not valid."]}
        )
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        user.totp_secret_encrypted = ""
        user.totp_enabled_at = None
        user.totp_last_step = None
        user.save(update_fields=["totp_secret_encrypted", "totp_enabled_at", "totp_last_step"])
        RecoveryCode.objects.filter(user=user).delete()  # they guard a second factor that no longer exists
        _audit_own(user, "auth.totp_disable", ip=ip)
    return user


def user_language_set(*, user: User, language: str, ip: str = "") -> User:
    """The portal's language for this staff member (`en`, `ms`; '' = the company's default, else the browser's)."""
    chosen = locale_normalize(language) if language else ""
    if language and not chosen:
        raise ApplicationError(
            f"One of {', '.join(supported_locales())}.", code="validation_error", errors={"language": ["Unknown."]}
        )
    if chosen != user.language:
        User.objects.filter(pk=user.pk).update(language=chosen)
        user.language = chosen
        _audit_own(user, "staff.language_set", ip=ip, data={"language": chosen})
    return user
