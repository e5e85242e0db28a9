"""users-data: the data service that owns the users table; everything else reaches users over HTTP."""
