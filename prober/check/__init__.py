"""`prober check PATH`: probe an existing mount in seconds, inside a private subdirectory."""
