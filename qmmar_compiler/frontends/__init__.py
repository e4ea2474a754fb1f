"""Frontends: programs written in other frameworks, imported into qmm."""
