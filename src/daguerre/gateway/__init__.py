"""The HTTP front: OpenAI-compatible images API and the native job API.

It never imports workers/ or models/ (nor torch): it records jobs, starts workflows
through engine.client and reads results from the store.
"""
