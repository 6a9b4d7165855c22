from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        from automations.running import activity_react
        from people.reactions import activity_reaction_register

        # People sit below automations: an activity posted for a person reaches the automations it triggers here.
        activity_reaction_register("automations", activity_react)
