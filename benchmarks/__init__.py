"""Side-by-side measurements, each printing its conditions and a JSON last line."""
