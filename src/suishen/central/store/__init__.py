"""The hub's stored things and the only SQL that changes them (DESIGN §2): sites and gateways,
the signed lists' rows, and the audit trail. The CLI and the HTTP front doors call these
functions; none of them holds SQL of its own."""
