"""Daguerre's own small model: flat-coloured geometric scenes, trained here, shipped as weights.

The world it draws is fixed in ``scene`` (objects, palette, renderer) and ``grammar``
(captions and edit instructions). ``checker`` reads scenes back from pixels, so the
model can be scored without trusting the model.
"""
