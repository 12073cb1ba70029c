from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "webapp.labeling"
    label = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        from django.apps import apps
        from django.conf import settings
        from django.db.models.signals import post_migrate, post_save

        from webapp.labeling.roles import ensure_role_groups, on_user_saved

        # After every migrate: the role groups with exactly their permissions. post_migrate
        # is sent only for apps with models, so it is heard as the accounts app's.
        accounts = apps.get_app_config("accounts")
        post_migrate.connect(ensure_role_groups, sender=accounts, dispatch_uid="role-groups")
        # A user's staff flag and role group follow their role on every save.
        post_save.connect(
            on_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="user-role-sync"
        )
        # The import job's handler registers itself with the job registry.
        from webapp.labeling import jobs  # noqa: F401
