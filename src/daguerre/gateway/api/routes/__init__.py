"""One router per resource; each handler is a few lines over gateway.jobs."""
