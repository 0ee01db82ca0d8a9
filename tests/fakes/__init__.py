"""Local HTTP servers that speak the providers' and Parallel's wire formats, for tests."""
