"""Decisions about what a user may start, shared by the hub and the portal service.

Pure functions over plain data (no I/O, no framework): ``options`` computes what a user is
offered, ``admission`` decides whether one start may go ahead and why not. The portal runs
admission inside the transaction that records the session, so two starts cannot both take
the last GPU; the hub uses the same functions to draw the spawn page.
"""
