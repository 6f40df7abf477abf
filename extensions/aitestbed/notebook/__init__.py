"""What runs inside a user's session: the portal client and its widgets.

Needs only the ``notebook`` extra (requests, ipywidgets); never the hub or the portal.
"""
