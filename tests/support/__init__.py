"""Helpers shared by the test suite: real servers on free loopback ports, real clients."""
