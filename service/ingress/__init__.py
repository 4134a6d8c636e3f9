"""The doors into the engine: REST (http.py). No tensor maths here."""
