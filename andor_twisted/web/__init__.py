"""The HTTP side of the server: the JSON control API (api.py) and the site that mounts it."""
