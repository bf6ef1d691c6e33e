"""The ovirt-websocket-proxy daemon."""
