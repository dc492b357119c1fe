"""The HTTP front: OpenAI-compatible images API and the native job API.

Three rooms, plus the assembly:

- ``api/``: the HTTP surface (routes, request dependencies, errors, schemas, SSE, the
  edge middleware, the chat page's router);
- ``services/``: what the routes do (jobs, edits and uploads, conversations, signed
  links, the orphan reconciler);
- ``access/``: who may do what, how much and how soon (rate limits, rollout gates,
  admission, live controls, the key cache, stream slots);
- ``app.py`` builds the FastAPI app, ``context.py`` the ``Services`` every handler gets,
  ``metrics.py`` declares the gateway's Prometheus metrics.

It never imports workers/ or models/ (nor torch): it records jobs, starts workflows
through engine.client and reads results from the store.
"""
