"""The worker process: loads one model, serves one pool's task queue, runs renders."""
