"""ovirt-websocket-proxy: the TLS WebSocket-to-VNC relay that accepts only engine-signed tickets."""
