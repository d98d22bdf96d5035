"""The real provider: Andor's pyAndorSDK3, imported only when a real camera is asked for."""

from __future__ import annotations

from andor_twisted.camera.contract import SDK, IRIGReader

INSTALL_HINT = (
    "pyAndorSDK3 is not installed. It ships with Andor SDK3, not on PyPI: install SDK3 from Andor "
    "(https://andor.oxinst.com/downloads), then `pip install <SDK3 install dir>/pyAndorSDK3` into "
    "this server's environment (version 1.19 or later), or run with --camera sim"
)


def load() -> SDK:
    """pyAndorSDK3's low-level ATCore as a provider, or ImportError with INSTALL_HINT."""
    try:
        import pyAndorSDK3
        from pyAndorSDK3 import andor_sdk3_internals
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e

    def utility() -> IRIGReader:
        from pyAndorSDK3.andor_utility import ATUtility

        return ATUtility()  # type: ignore[no-any-return]

    version = getattr(pyAndorSDK3, "__version__", "(version unknown)")
    return SDK(f"pyAndorSDK3 {version}", andor_sdk3_internals.ATCore, andor_sdk3_internals.ATCoreException,
               utility)
