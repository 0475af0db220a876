"""Understudy's pytest plugin (entry point `understudy`): fixtures that give each test a live server."""
