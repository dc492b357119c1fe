"""Daguerre's own small model: flat-coloured geometric scenes, trained here, shipped as weights.

This package is the runtime: the backend, the network, the sampler and what they read
(tokens, scene palette, prompt text, weights). The world it draws is fixed in ``scene``
(objects, palette, renderer) and ``grammar`` (captions and edit instructions). What a
request asks is read before rendering (``understanding``) and its result is checked by
the pixel checker (``reading``, ``checker``) and redrawn where wrong (``verify``).
``training/`` holds the recipe behind the weights and the evaluation. Serving never
imports ``training/``.
"""
