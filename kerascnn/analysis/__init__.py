"""Model analysis: cost counts (more to come: layer profiles, receptive fields)."""
