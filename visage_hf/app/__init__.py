"""The Space's logic (request checks, limits, model loading); `app.py` at the repository root is its UI."""
