"""The HTTP layer: thin routes over the gateway and the services."""
