"""The sans-I/O core: formats and arithmetic with no Twisted and no sockets."""
