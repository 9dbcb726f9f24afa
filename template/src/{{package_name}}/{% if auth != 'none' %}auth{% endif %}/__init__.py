"""Users, passwords and login."""
