"""Projects and their allocations, managed by operators without a file edit or a restart.

``logic`` holds the rules (the settings file's own checks; rows the settings file owns are
read-only here), ``api`` the REST routes, ``pages`` the operator console's project pages.
"""
