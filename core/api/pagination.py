"""Cursor pagination for every list endpoint: stable under inserts, opaque `next`/`previous` links."""

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = ("-created_at", "-id")
