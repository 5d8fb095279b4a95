"""Simulated partner APIs (real HTTP servers on 127.0.0.1) for the partner-integration connectors."""
