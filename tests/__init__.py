"""andor-twisted's trial tests, one module per room of the package."""
