"""People-facing queries: ``(connection, scope, params) -> frozen rows`` (DESIGN §2, §7).

One module per area; the front doors (web pages, the analyst API, the CLI) call these and hold
no SQL of their own.  Every function takes a Scope, so a site manager's pages cannot read
another site's rows whatever a request asks for.
"""
