"""The ``__main__.__file__`` of a pytest-xdist worker (see conftest.py); deliberately empty."""
