"""Pure rendering of desired state into nginx configuration files."""
