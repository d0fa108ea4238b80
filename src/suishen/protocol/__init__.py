"""Sans-I/O core: code formats, COSE/CWT, base45, trust lists, identity documents, framing.

Nothing here does I/O, reads a clock, logs, or imports another suishen package.
"""
