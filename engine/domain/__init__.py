"""Domain services: the rules of the engine, between the API views/tasks and the stores."""
