"""The camera layer: one driver (driver.AndorCamera) over two providers of the pyAndorSDK3 API.

``sdk3`` imports Andor's real pyAndorSDK3 only when asked for; ``sim`` is a physical model of the
camera shaped like the same API, so the driver code that runs in production is the code under test.
"""
