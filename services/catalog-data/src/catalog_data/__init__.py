"""catalog-data: the data service that owns the catalog items; everything else reaches them over HTTP."""
