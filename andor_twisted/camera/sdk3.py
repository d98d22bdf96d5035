"""The real provider: Andor's pyAndorSDK3, imported only when a real camera is asked for."""

INSTALL_HINT = (
    "pyAndorSDK3 is not installed. It ships with Andor SDK3, not on PyPI: install SDK3 from Andor "
    "(https://andor.oxinst.com/downloads), then `pip install <SDK3 install dir>/pyAndorSDK3` into "
    "this server's environment, or run with --camera sim"
)


def load():
    """The pyAndorSDK3 module, or ImportError with INSTALL_HINT."""
    try:
        import pyAndorSDK3
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return pyAndorSDK3
