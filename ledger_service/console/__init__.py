"""The web console: server-rendered pages under ``/console`` for tenants and operators.

Signed in by one-time login links (``ledger login-link``), kept signed in by a signed session
cookie, every form carrying a CSRF token bound to the session. Pages read the read models the
API reads; forms run the API's own commands, with the API's scopes and tenant isolation.
"""
