"""The kernel: settings, database engines, users and authentication, errors, the web app.

Nothing here knows what a CRM is.
"""
