"""The shop example: products in the database, a cart in the session, and
orders that change both in one unit of work."""
