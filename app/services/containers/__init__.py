"""Containers (/v1/containers): the code interpreter's persistent work dirs."""
