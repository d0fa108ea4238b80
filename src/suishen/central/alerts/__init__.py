"""The alert loop at the hub (DESIGN §7): received -> accepted -> dispatched -> handled ->
fed back -> closed, as the one state table of protocol.alert_loop.

- loop.py: ``advance`` (one step, with who, when and a note), ``on_received`` (ingest's hook:
  deadlines and the received webhook), ``store_deadlines`` (the config into the database);
- settings.py: the ``[alerts]`` config section (deadlines per route and step, reminders,
  webhook delivery);
- endpoints.py: a webhook endpoint per route (URL, secret file, enabled);
- signing.py: the ``X-Suishen-Signature`` scheme (docs/WEBHOOKS.md), pure;
- sender.py: the outbox sender and reminder pass (``alerts_ctx``, an app.cleanup_ctx entry);
- callback.py: ``POST /hooks/alerts/{alert_id}``, the platform's signed accept / feedback.

Reading alerts (inbox, detail with timeline and deliveries) is central/queries/alerts.py.

Errors are the hub's (central/errors.py): NotFound for an alert outside the caller's scope,
Conflict for a step the table does not allow, BadRequest for malformed input, Forbidden for a
callback whose signature is refused.
"""
