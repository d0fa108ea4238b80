"""The web UI's view modules, one per area; each has ``add_routes(app)`` and is listed in
web/app.py ``VIEW_MODULES``.  Views hold no SQL: they call central/queries and central/store."""
