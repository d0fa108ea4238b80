"""People-facing query functions, one module per area: ``async def name(con, scope, params)``
returning frozen rows (DESIGN §7).  Front doors (pages, API, CLI) call these; no SQL of theirs."""
