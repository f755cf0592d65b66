"""GUI tests (offscreen Qt); a package so its conftest and helpers do not shadow tests/."""
