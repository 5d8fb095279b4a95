"""Small things every part of Pitwall shares: where the data lives, and nothing else heavy."""
