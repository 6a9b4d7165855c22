"""Cursor pagination for every list endpoint: stable under inserts, opaque `next`/`previous` links."""

from rest_framework import pagination

from core.errors import ApplicationError


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = ("-created_at", "-id")

    def get_page_size(self, request):
        """`limit` must be a positive integer (capped at max_page_size); DRF silently ignored anything else."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or int(raw) < 1:
            raise ApplicationError(
                f"limit must be a whole number from 1 to {self.max_page_size}.",
                code="validation_error",
                errors={"limit": ["Use a positive integer."]},
            )
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters
