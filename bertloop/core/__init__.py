"""The ground floor: configuration, constants, workspace layout, hashing, environment defaults and the stores.

Nothing here imports a stage package; every stage imports from here.
"""
