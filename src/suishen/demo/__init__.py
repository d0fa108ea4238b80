"""The one-command demo, the simulated site rig and the issuer helpers (DESIGN §2: demo/).

- main: `suishen demo` (stage 1 codes, stage 2 a simulated site with a real gateway; stage 3
  in hub_stage: the hub on embedded PostgreSQL with the gateway syncing to it);
- simsite: simulated pty scanners and Modbus turnstiles wired to a gateway config (the demo,
  the integration tests and the benchmarks use it);
- issuer: issuer keys, codes and trust files (the city app's role, for tests and the demo).

Importing this package imports nothing else: `suishen issuer` uses demo.issuer on a base
install, while main, hub_stage and simsite need the devices and hub extras.
"""
