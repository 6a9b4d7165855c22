"""Code-inventory supplier (pre-bought codes uploaded by the operator)."""
