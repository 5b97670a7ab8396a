"""metacrm: a low-code, metadata-driven CRM platform.

Admins describe entities, fields and rules as metadata; the runtime turns them into tables and APIs.
"""

__version__ = "0.1.0"
