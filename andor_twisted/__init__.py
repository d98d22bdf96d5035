"""andor-twisted: an instrument server that owns one Andor SDK3 camera."""
