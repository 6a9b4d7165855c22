from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .key_cache import keys_changed
        from .models import ApiKey, Tenant

        # Saves and deletes outside tenants.services (the operator admin, fixtures) drop cached keys too.
        for model in (ApiKey, Tenant):
            post_save.connect(keys_changed, sender=model, dispatch_uid=f"key_cache.{model.__name__}.save")
            post_delete.connect(keys_changed, sender=model, dispatch_uid=f"key_cache.{model.__name__}.delete")
