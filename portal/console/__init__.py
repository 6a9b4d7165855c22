"""The operator console (`/console/`): public host only, `is_staff` users of the public schema.

Tenants (create, suspend/reactivate), pending deposit requests across tenants (approve & credit / reject),
catalogue and supplier stock, and health (queues, failed rewards, disabled webhooks, worker heartbeat), one
module each; base.py holds what every page shares (the public-host and operator checks, the audit row).
Operator actions are audited in the affected tenant's schema with actor `operator:<email>`.
On a tenant host every console URL is a 404.
"""
