"""HTTP API: one blueprint per resource; views call services, never the stores' drivers."""
