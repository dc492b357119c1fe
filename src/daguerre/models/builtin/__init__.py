"""Daguerre's own small model: flat-coloured geometric scenes, trained here, shipped as weights.

This package is the runtime: the backend, the network, the sampler and what they read
(tokens, scene palette, prompt text, weights). The world it draws is fixed in ``scene``
(objects, palette, renderer) and ``training.grammar`` (captions and edit instructions);
``training/`` also holds the recipe behind the weights and the pixel checker that scores
the model without trusting the model. Serving never imports ``training/``.
"""
