"""The hub's web UI: server-rendered pages, live feeds, i18n (see web/app.py)."""
