"""How the built-in model was made and how it is scored; nothing here runs at serve time.

``grammar`` is the small language of the model's world (captions and edit
instructions), ``data`` generates training and evaluation examples from it, ``train``
is the seeded recipe behind the shipped weights, ``checker`` reads scenes back from
pixels (so the model is scored without trusting the model) and ``evaluate`` is
``daguerre eval builtin``. The runtime (backend, sampler, ...) imports none of these.
"""
