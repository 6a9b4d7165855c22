from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        from automations.running import activity_react
        from people.reactions import activity_reaction_register

        # People sit below automations: an activity posted for a person reaches the automations it triggers here.
        activity_reaction_register("automations", activity_react)

        from automations.models import AutomationRun
        from people.erasure import erasure_fields_register

        erasure_fields_register(AutomationRun, ("failure_reason",))  # a refusal may quote the address

        from automations.running import run_render
        from people.export import export_section_register

        export_section_register(
            "automation_runs",
            lambda person: [
                run_render(run) for run in AutomationRun.objects.filter(person=person).order_by("created_at")
            ],
        )
