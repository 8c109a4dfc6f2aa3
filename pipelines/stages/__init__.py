"""See the package docstring of dlpipe."""
