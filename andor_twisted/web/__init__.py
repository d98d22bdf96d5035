"""The HTTP side of the server: the JSON control API (api.py), the site that mounts it with the frame
streams (site.py), and the browser viewer's files (static/)."""
