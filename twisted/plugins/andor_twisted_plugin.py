"""twistd plugin: ``twistd -n andor``. Kept to one line; everything lives in andor_twisted.tap."""
from twisted.application.service import ServiceMaker

andor = ServiceMaker("andor", "andor_twisted.tap", "Andor SDK3 camera server", "andor")
