"""Access requests: a user without a project asks, an operator approves or declines.

``logic`` holds the rules, ``api`` the REST routes, ``pages`` the access page (where a user
without an active project lands) and the operator's requests page.
"""
