"""engine-setup for the noVNC console's WebSocket proxy: the domain library the plugins call."""
