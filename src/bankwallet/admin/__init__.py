"""The back office: staff pages under ``/admin`` and the JSON API under ``/api/v1/admin``.

The rules (who may do what) live in ``bankwallet.identity.staff``; this package holds only
the routes and pages.
"""
