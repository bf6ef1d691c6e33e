"""An otopi-compatible setup framework: stages, events, a typed environment, dialogs, answer files,
file transactions and logging. It knows nothing about WebSocket proxies."""
