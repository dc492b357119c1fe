"""The HTTP surface: routes, request dependencies (keys, scopes), errors in OpenAI's
shape, schemas, Server-Sent Events, and the edge middleware (odd text, security headers)."""
