"""Temporal: the GenerateImage workflow, the activity contracts and the client facade.

Nothing here imports a model, torch or the workers: the gateway imports the facade
and the workflow sandbox imports the workflow module.
"""
