"""The project as a whole: the benchmark and the layering of its packages."""
