"""The fault and load suite: concurrent admission bursts, processes killed at chosen points,
paging beyond one page, and a fuzz run over the portal's OpenAPI.

Every test here is bounded in count and time so that ``make test`` stays well under its
budget; each states the invariant it checks after the fault.
"""
